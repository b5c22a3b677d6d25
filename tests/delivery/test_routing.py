"""Where delivery sends mail: one transaction per domain, MX order, never internal addresses."""

import smtplib
from collections.abc import Callable

from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import ALLOW_ALL_BUT_INTERNAL, BODY, FAST, HOSTS, parse, put, queue_is_empty, report_parts
from delivery.peers import WireRecorder


def test_recipients_at_two_domains_make_one_transaction_each(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    example, other = sinks("example.test"), sinks("other.test")
    policy = relay.start_policy()
    ingress = relay.start_ingress(policy)
    relay.start_delivery(**FAST)

    with smtplib.SMTP(ingress.host, ingress.port, timeout=10) as client:
        client.sendmail("alice@sender.test", ["bob@example.test", "carol@other.test", "dave@example.test"], BODY)

    wait_until(lambda: len(example.messages) == 1 and len(other.messages) == 1, what="delivery to both domains")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert example.handler.transactions == 1
    assert other.handler.transactions == 1
    assert sorted(example.messages[0].rcpt_tos) == ["bob@example.test", "dave@example.test"]
    assert other.messages[0].rcpt_tos == ("carol@other.test",)
    assert example.messages[0].mail_from == other.messages[0].mail_from == "alice@sender.test"


def test_secondary_mx_takes_the_mail_when_the_primary_is_down(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    secondary = sinks("backup.test")
    relay.start_delivery(**FAST)

    put(redis_server.url, "alice@sender.test", ["bob@backup.test"])

    wait_until(lambda: len(secondary.messages) == 1, what="delivery via mx2.backup.test")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert secondary.messages[0].rcpt_tos == ("bob@backup.test",)
    assert secondary.handler.transactions == 1


def test_an_mx_with_only_an_ipv6_address_is_reached_over_ipv6(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    destination = sinks("v6.test")
    relay.start_delivery(**FAST, SMARTHOST_DELIVERY_ALLOW_NETWORKS="127.0.0.0/8,::1/128")

    put(redis_server.url, "alice@sender.test", ["bob@v6.test"])

    wait_until(lambda: len(destination.messages) == 1, what="delivery to mx.v6.test at ::1")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert destination.messages[0].rcpt_tos == ("bob@v6.test",)


def test_mx_on_an_internal_address_is_never_connected_to_and_bounces(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer, mx_port: int
) -> None:
    internal = WireRecorder(HOSTS["internal.test"], mx_port)
    sender = sinks("sender.test")
    try:
        delivery = relay.start_delivery(
            **FAST, SMARTHOST_DELIVERY_ALLOW_NETWORKS=ALLOW_ALL_BUT_INTERNAL, SMARTHOST_MAX_QUEUE_LIFETIME="4s"
        )
        queue_id = put(redis_server.url, "alice@sender.test", ["bob@internal.test"])

        wait_until(lambda: len(sender.messages) == 1, timeout=30, what="DSN to the sender")
        wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    finally:
        internal.stop()

    assert internal.connections == 0
    deferrals = [
        line for line in delivery.process.log().splitlines() if "message deferred" in line and queue_id in line
    ]
    assert deferrals, "the message should have been deferred before it bounced"
    _, (_, status), _ = report_parts(parse(sender.messages[0].data))
    assert status["Action"] == "failed"
    assert "not a public address" in status["Diagnostic-Code"]
    assert "mx.internal.test [127.0.0.9]" in status["Diagnostic-Code"]
