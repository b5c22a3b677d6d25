import email
import email.policy
from email.message import EmailMessage, Message

from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient

from smarthost_delivery.classify import classify, status_of
from smarthost_delivery.dsn import Report, build_dsn

ORIGINAL = QueuedMessage(
    queue_id="Q1",
    mail_from="alice@sender.test",
    recipients=[Recipient(address="bob@example.test")],
    customer="acme",
    received_at_ms=1_700_000_000_000,
    last_attempt_ms=1_700_000_060_000,
)
BODY = b"Subject: hi\nFrom: alice@sender.test\n\nsecret body\n"


def blocks(data: bytes) -> list[Message]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    parts = message.get_payload()
    assert isinstance(parts, list) and isinstance(parts[1], Message)
    status = parts[1].get_payload()
    assert isinstance(status, list)
    return [block for block in status if isinstance(block, Message)]


def test_dsn_is_from_the_null_sender_to_the_original_sender_without_the_body() -> None:
    failed = Recipient(
        address="bob@example.test", last_error="550 5.1.1 no such user", remote_mta="mx.example.test [192.0.2.1]"
    )
    record, data = build_dsn(ORIGINAL, BODY, Report("failed", [failed]), "relay.test")
    assert record.mail_from == ""
    assert [rcpt.address for rcpt in record.recipients] == ["alice@sender.test"]
    assert record.customer == "acme"
    assert b"secret body" not in data
    assert b"Subject: hi\r\nFrom: alice@sender.test\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    _, per_recipient = blocks(data)
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.example.test"
    assert per_recipient["Last-Attempt-Date"]


def test_remote_text_cannot_break_out_of_its_header_field() -> None:
    evil = Recipient(address="bob@example.test", last_error="550 5.7.1 no\r\nAction: delivered\x00" + "x" * 2000)
    _, data = build_dsn(ORIGINAL, BODY, Report("failed", [evil]), "relay.test")
    _, per_recipient = blocks(data)
    assert per_recipient["Action"] == "failed"
    assert len(per_recipient["Diagnostic-Code"]) < 600
    assert per_recipient["Diagnostic-Code"].startswith("X-Smarthost; 550 5.7.1 no Action: delivered")


def test_utf8_recipient_uses_the_utf8_address_type() -> None:
    rcpt = Recipient(address="jürgen@example.test", last_error="451 4.4.1 unreachable")
    _, data = build_dsn(ORIGINAL, BODY, Report("delayed", [rcpt], retry_until_ms=1_700_400_000_000), "relay.test")
    _, per_recipient = blocks(data)
    assert per_recipient["Final-Recipient"] == "utf-8; jürgen@example.test"
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Will-Retry-Until"]


def test_classification_comes_from_the_rules_file() -> None:
    assert classify("550 5.1.1 user unknown").category == "mailbox_unknown"
    assert classify("556 5.1.10 domain x accepts no mail (null MX, RFC 7505)").category == "domain_unroutable"
    assert classify("451 4.7.4 TLS is required, but was not offered by mx").category == "tls"
    assert classify("554 5.7.1 blocked as spam").category == "policy"
    assert classify("451 4.4.1 MX mx [10.0.0.1] is not a public address; not connecting").category == "internal_address"
    assert classify("550 go away").category == "other"
    assert [status_of(reply) for reply in ["552 5.3.4 too big", "550 nope", "451 4.2.1 later", "garbage"]] == [
        "5.3.4",
        "5.0.0",
        "4.2.1",
        "4.0.0",
    ]
