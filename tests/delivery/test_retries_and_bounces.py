"""Retries on 4xx, DSNs on 5xx and on expiry, delay notices; delivered recipients never sent twice."""

import email.utils
from collections.abc import Callable

from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import FAST, parse, put, queue_is_empty, report_parts


def refuse_first(times: int, stage: str, reply: str, only: str = "") -> Callable[[str, str], str | None]:
    """A sink reply hook: `reply` to the first `times` commands of `stage` (for `only` that recipient)."""
    seen = {"n": 0}

    def answer(at: str, arg: str) -> str | None:
        if at == stage and (not only or arg == only) and seen["n"] < times:
            seen["n"] += 1
            return reply
        return None

    return answer


def test_data_refused_twice_with_451_is_delivered_once_after_retries(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    destination = sinks("example.test", refuse_first(2, "DATA", "451 4.3.0 try again later"))
    relay.start_delivery(**FAST)

    put(redis_server.url, "alice@sender.test", ["bob@example.test"])

    wait_until(lambda: len(destination.messages) == 1, timeout=30, what="delivery after two 451s")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert destination.handler.transactions == 3
    assert len(destination.messages) == 1


def test_delivered_recipients_are_not_sent_again_when_the_rest_is_retried(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    reply = refuse_first(2, "RCPT", "450 4.2.1 mailbox busy", only="carol@example.test")
    destination = sinks("example.test", reply)
    relay.start_delivery(**FAST)

    put(redis_server.url, "alice@sender.test", ["bob@example.test", "carol@example.test"])

    wait_until(lambda: len(destination.messages) == 2, timeout=30, what="delivery to both recipients")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert [message.rcpt_tos for message in destination.messages] == [
        ("bob@example.test",),
        ("carol@example.test",),
    ]


def test_a_550_recipient_gets_a_dsn_and_the_others_their_mail(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    reply = refuse_first(1, "RCPT", "550 5.1.1 <nobody@example.test>: user unknown", only="nobody@example.test")
    destination = sinks("example.test", reply)
    other = sinks("other.test")
    sender = sinks("sender.test")
    relay.start_delivery(**FAST)

    queue_id = put(redis_server.url, "alice@sender.test", ["bob@example.test", "nobody@example.test", "c@other.test"])

    wait_until(lambda: len(sender.messages) == 1, timeout=30, what="DSN at the sender's MX")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert [message.rcpt_tos for message in destination.messages] == [("bob@example.test",)]
    assert [message.rcpt_tos for message in other.messages] == [("c@other.test",)]

    bounce = sender.messages[0]
    assert bounce.mail_from == "<>"  # how aiosmtpd spells the null reverse path
    assert bounce.rcpt_tos == ("alice@sender.test",)
    dsn = parse(bounce.data)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["To"] == "alice@sender.test"
    assert dsn["Auto-Submitted"] == "auto-replied"
    human, blocks, headers = report_parts(dsn)
    assert "nobody@example.test" in human
    assert "does not exist" in human
    per_message, *per_recipient = blocks
    assert per_message["Reporting-MTA"] == "dns; relay.test"
    assert per_message["X-Smarthost-Queue-ID"] == queue_id
    assert email.utils.parsedate_to_datetime(per_message["Arrival-Date"])
    assert len(per_recipient) == 1
    (failed,) = per_recipient
    assert failed["Final-Recipient"] == "rfc822; nobody@example.test"
    assert failed["Action"] == "failed"
    assert failed["Status"] == "5.1.1"
    assert failed["Remote-MTA"] == "dns; mx.example.test"
    assert failed["Diagnostic-Code"] == "smtp; 550 5.1.1 <nobody@example.test>: user unknown"
    assert "Subject: delivery test" in headers
    assert "Message-ID: <test-1@sender.test>" in headers


def test_queue_lifetime_passed_sends_a_dsn_and_forgets_the_message(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    destination = sinks("example.test", lambda stage, arg: "451 4.7.1 greylisted" if stage == "RCPT" else None)
    sender = sinks("sender.test")
    relay.start_delivery(**FAST, SMARTHOST_MAX_QUEUE_LIFETIME="3s")

    put(redis_server.url, "alice@sender.test", ["bob@example.test"])

    wait_until(lambda: len(sender.messages) == 1, timeout=30, what="DSN after the queue lifetime")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert destination.messages == []
    human, (_, failed), _ = report_parts(parse(sender.messages[0].data))
    assert "queue lifetime of 3s passed" in human
    assert failed["Action"] == "failed"
    assert failed["Status"] == "4.7.1"
    assert failed["Diagnostic-Code"] == "smtp; 451 4.7.1 greylisted"
    client = redis_server.client()
    try:
        assert client.zcard("smarthost:queue:deferred") == 0
        assert client.xlen("smarthost:queue:ready") == 0
    finally:
        client.close()


def test_a_delay_notice_goes_out_once_while_retries_continue(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    sinks("example.test", refuse_first(4, "RCPT", "451 4.4.1 not now"))
    sender = sinks("sender.test")
    relay.start_delivery(**FAST, SMARTHOST_DELAY_WARNING="2s")

    put(redis_server.url, "alice@sender.test", ["bob@example.test"])

    wait_until(lambda: queue_is_empty(redis_server), timeout=30, what="delivery after the delay")
    assert len(sender.messages) == 1
    human, (_, delayed), _ = report_parts(parse(sender.messages[0].data))
    assert "you do not need to send it again" in human
    assert delayed["Action"] == "delayed"
    assert delayed["Status"] == "4.4.1"
    assert delayed["Will-Retry-Until"]


def test_no_dsn_answers_a_message_from_the_null_sender(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    sinks("example.test", lambda stage, arg: "550 5.1.1 no such user" if stage == "RCPT" else None)
    sender = sinks("sender.test")
    delivery = relay.start_delivery(**FAST)

    queue_id = put(redis_server.url, "", ["bob@example.test"])

    wait_until(lambda: queue_is_empty(redis_server), what="bounce of a bounce dropped")
    assert sender.messages == []
    assert any("without DSN" in line and queue_id in line for line in delivery.process.log().splitlines())
