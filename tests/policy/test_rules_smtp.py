"""Every rule of the provider's table, through the real SMTP path.

One ingress on 127.0.0.1 and one on ::1 share a policy service, Redis and a
dnsmasq serving one domain per routability outcome; each case checks the
reply code and enhanced status code the contract names.
"""

import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.dns_responder import DnsResponder
from support.dns_server import DnsServer
from support.policy_zone import RECIPIENT, SENDER, policy_zone
from support.ports import free_port
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Listener, Relay
from support.smtp_replies import data_status, status

POLICY = """
defaults:
  maxMessageSize: 20971520
  rateLimit: {messages: 160, per: 6h}
  requireMx: true
  maxRecipients: 100
customers:
  - name: loopback
    networks: [127.0.0.1/32]
  - name: lax
    networks: [127.0.0.6/32]
    requireMx: false
  - name: six
    networks: ["::1/128"]
    maxMessageSize: 4096
    maxRecipients: 3
"""
DNS_TIMEOUT = 2.0
BODY = b"Subject: rules\r\n\r\nHello.\r\n"


@dataclass(frozen=True)
class Stack:
    v4: Listener
    v6: Listener


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Started once for the module: every case here only reads the policy."""
    workdir = tmp_path_factory.mktemp("rules")
    group = ProcessGroup(workdir)
    servfail, silent = DnsResponder(servfail=True), DnsResponder(servfail=False)
    failed_before = request.session.testsfailed
    try:
        redis = RedisServer(group, workdir / "redis")
        dns = DnsServer(group, workdir, policy_zone(servfail.port, silent.port), free_port())
        relay = Relay(group, workdir, redis_url=redis.url, dns=dns.address, delivery_port=25, policy=POLICY)
        policy = relay.start_policy(SMARTHOST_DNS_TIMEOUT=f"{DNS_TIMEOUT}s")
        yield Stack(relay.start_ingress(policy), relay.start_ingress(policy, host="::1"))
    finally:
        group.stop_all()
        servfail.stop()
        silent.stop()
        if request.session.testsfailed > failed_before:
            print(group.logs())


def connect(listener: Listener, source: str | None = None) -> smtplib.SMTP:
    client = smtplib.SMTP(listener.host, listener.port, timeout=15, source_address=(source, 0) if source else None)
    client.ehlo("customer.test")
    return client


def mail_options(*addresses: str) -> list[str]:
    return [] if all(address.isascii() for address in addresses) else ["SMTPUTF8"]


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        (SENDER, "250 2.1.0"),
        ("", "250 2.1.0"),
        ("alice@bücher.test", "250 2.1.0"),
        ("alice@unknown.test", "550 5.1.8"),
        ("alice@nomx.test", "550 5.1.8"),
        ("alice@badmx.test", "550 5.1.8"),
        ("alice@nullmx.test", "550 5.7.27"),
        ("alice@servfail.test", "451 4.4.3"),
        ("alice@slow.test", "451 4.4.3"),
        ("alice@slowmx.test", "451 4.4.3"),
        # The ingress's path parser refuses it before the policy is asked.
        ("alice@exa_mple.test", "553 5.1.3"),
    ],
)
def test_sender_domain(stack: Stack, sender: str, expected: str) -> None:
    with connect(stack.v4) as client:
        started = time.monotonic()
        assert status(client.mail(sender, mail_options(sender))) == expected
        # A dead resolver costs the DNS timeout, never a hung session.
        assert time.monotonic() - started < DNS_TIMEOUT + 3


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        (RECIPIENT, "250 2.1.5"),
        ("bob@BÜCHER.test", "250 2.1.5"),
        ("bob@xn--bcher-kva.test", "250 2.1.5"),
        ("bob@unknown.test", "550 5.1.2"),
        ("bob@nomx.test", "550 5.1.2"),
        ("bob@badmx.test", "550 5.1.2"),
        ("bob@nullmx.test", "556 5.1.10"),
        ("bob@servfail.test", "451 4.4.3"),
        ("bob@slow.test", "451 4.4.3"),
        ("bob@slowmx.test", "451 4.4.3"),
        ("bob@exa_mple.test", "553 5.1.3"),
        ("bob@-example.test", "553 5.1.3"),
    ],
)
def test_recipient_domain(stack: Stack, recipient: str, expected: str) -> None:
    with connect(stack.v4) as client:
        assert status(client.mail(SENDER, mail_options(recipient))) == "250 2.1.0"
        started = time.monotonic()
        assert status(client.rcpt(recipient)) == expected
        assert time.monotonic() - started < DNS_TIMEOUT + 3


def test_client_outside_customer_networks_is_refused(stack: Stack) -> None:
    with connect(stack.v4, source="127.0.0.9") as client:
        assert status(client.mail(SENDER)) == "554 5.7.1"
        assert client.rcpt(RECIPIENT)[0] == 503


def test_accepted_message_gets_its_250(stack: Stack) -> None:
    with connect(stack.v4) as client:
        assert status(client.mail(SENDER)) == "250 2.1.0"
        assert status(client.rcpt(RECIPIENT)) == "250 2.1.5"
        assert data_status(client, BODY) == "250 2.0.0"


def test_size_limit_is_advertised_and_enforced(stack: Stack) -> None:
    with connect(stack.v4) as client:
        assert client.esmtp_features["size"] == "20971520"
        assert status(client.mail(SENDER, ["SIZE=20971521"])) == "552 5.3.4"
        assert status(client.mail(SENDER, ["SIZE=20971520"])) == "250 2.1.0"


def test_ipv6_customer_with_its_own_limits(stack: Stack) -> None:
    """A customer matched by ::1/128, whose overrides replace the defaults."""
    with connect(stack.v6) as client:
        assert client.sock is not None and client.sock.getpeername()[0] == "::1"
        assert client.esmtp_features["size"] == "4096"
        assert status(client.mail(SENDER, ["SIZE=4097"])) == "552 5.3.4"
        assert status(client.mail(SENDER, ["SIZE=4000"])) == "250 2.1.0"
        for n in range(3):
            assert status(client.rcpt(f"bob{n}@example.test")) == "250 2.1.5"
        assert status(client.rcpt("bob3@example.test")) == "452 4.5.3"
        # Declared small, sent big: refused at the end of DATA.
        assert data_status(client, BODY + (b"x" * 78 + b"\r\n") * 64) == "552 5.3.4"


def test_default_recipient_limit(stack: Stack) -> None:
    with connect(stack.v4) as client:
        assert status(client.mail(SENDER)) == "250 2.1.0"
        for n in range(100):
            assert status(client.rcpt(f"bob{n}@example.test")) == "250 2.1.5"
        assert status(client.rcpt("bob100@example.test")) == "452 4.5.3"


def test_require_mx_false_falls_back_to_address_records(stack: Stack) -> None:
    with connect(stack.v4, source="127.0.0.6") as client:
        assert status(client.mail("alice@nomx.test")) == "250 2.1.0"
        assert status(client.rcpt("bob@nomx.test")) == "250 2.1.5"
        assert status(client.rcpt("bob@unknown.test")) == "550 5.1.2"
        assert status(client.rcpt("bob@nullmx.test")) == "556 5.1.10"
