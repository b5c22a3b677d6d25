"""One run of the whole relay per module: accepted, refused, deferred and bounced mail.

What the run did is fixed here, so the tests can compare every counter with it:
- a client outside every customer network, refused at MAIL (554 5.7.1);
- `first`: to bob@example.test (delivered) and x@nullmx.test (refused at RCPT, 556);
- `later`: to later@example.test, answered 451 once, then 250 (deferred once);
- `bounced`: to nobody@example.test, answered 550: a DSN goes to alice@sender.test.
The services' /metrics are read once everything settled, before any test runs.
"""

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.dns_server import DnsServer
from support.ports import free_port
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Listener, Relay
from support.scrape import Scrape
from support.sinks import Reply, SmtpSink
from support.standard import DEFAULT_POLICY, MX_HOSTS, STANDARD_ZONE
from support.waiting import wait_until

STRANGER = "127.0.0.10"
MESSAGE = b"From: Alice <alice@sender.test>\r\nSubject: observability\r\n\r\nHello\r\n"


@dataclass(frozen=True)
class Run:
    group: ProcessGroup
    redis_url: str
    policy: Listener
    ingress: Listener
    delivery: Listener
    # queue ids of the three accepted messages
    first: str
    later: str
    bounced: str
    metrics: dict[str, Scrape]


def destination_replies() -> Reply:
    """nobody@ is unknown (550); later@ is answered 451 the first time only."""
    seen: set[str] = set()

    def reply(stage: str, arg: str) -> str | None:
        if stage == "RCPT" and arg == "nobody@example.test":
            return "550 5.1.1 <nobody@example.test>: user unknown"
        if stage == "RCPT" and arg == "later@example.test" and arg not in seen:
            seen.add(arg)
            return "451 4.3.0 try again later"
        return None

    return reply


def send(ingress: Listener, recipients: list[str], source: str = "127.0.0.1") -> str:
    """One session, one transaction; returns the queue id from the 250 after DATA."""
    with smtplib.SMTP(ingress.host, ingress.port, source_address=(source, 0), timeout=30) as client:
        client.ehlo("customer.test")
        assert client.mail("alice@sender.test")[0] == 250
        for rcpt in recipients:
            client.rcpt(rcpt)
        code, text = client.data(MESSAGE)
        assert code == 250, text
        return text.decode().rsplit(" ", 1)[1]


def refused_client(ingress: Listener) -> None:
    with smtplib.SMTP(ingress.host, ingress.port, source_address=(STRANGER, 0), timeout=30) as client:
        client.ehlo("stranger.test")
        assert client.mail("mallory@sender.test")[0] == 554


@pytest.fixture(scope="module")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir: Path = tmp_path_factory.mktemp("observability")
    group = ProcessGroup(workdir)
    sinks: list[SmtpSink] = []
    failed_before = request.session.testsfailed
    try:
        redis = RedisServer(group, workdir / "redis")
        dns = DnsServer(group, workdir, STANDARD_ZONE, free_port())
        mx_port = free_port(*MX_HOSTS.values())
        destination = SmtpSink(MX_HOSTS["example.test"], mx_port, destination_replies())
        sender = SmtpSink(MX_HOSTS["sender.test"], mx_port)
        sinks += [destination, sender]
        relay = Relay(
            group, workdir, redis_url=redis.url, dns=dns.address, delivery_port=mx_port, policy=DEFAULT_POLICY
        )
        policy = relay.start_policy()
        ingress = relay.start_ingress(policy)
        delivery = relay.start_delivery(SMARTHOST_RETRY_SCHEDULE="1s", SMARTHOST_QUEUE_METRICS_INTERVAL="1s")

        refused_client(ingress)
        first = send(ingress, ["bob@example.test", "x@nullmx.test"])
        later = send(ingress, ["later@example.test"])
        bounced = send(ingress, ["nobody@example.test"])

        wait_until(lambda: len(destination.messages) == 2 and len(sender.messages) == 1, 60, "deliveries and DSN")

        def settled() -> bool:
            seen = Scrape(delivery.metrics_port)
            return seen.value("smarthost_delivery_attempts_total", result="delivered") == 3 and not any(
                seen.by("smarthost_queue_messages", "state")
            )

        wait_until(settled, 30, "queue empty in the delivery gauges")
        metrics = {name: Scrape(listener.metrics_port) for name, listener in
                   (("ingress", ingress), ("policy", policy), ("delivery", delivery))}  # fmt: skip
        yield Run(group, redis.url, policy, ingress, delivery, first, later, bounced, metrics)
    finally:
        for sink in sinks:
            sink.stop()
        group.stop_all()
        if request.session.testsfailed > failed_before:
            print(group.logs())
