"""A message from a customer host reaches the destination MX, through every service."""

import re
import smtplib
from collections.abc import Callable

from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

BODY = (
    b"From: Alice <alice@sender.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: walking skeleton\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    b"\xc3\xa9 8-bit stays 8-bit\r\n"
)


def test_message_is_delivered_with_same_envelope_and_bytes(relay: Relay, sinks: Callable[..., SmtpSink]) -> None:
    destination = sinks("example.test")
    policy = relay.start_policy()
    ingress = relay.start_ingress(policy)
    relay.start_delivery()

    with smtplib.SMTP(ingress.host, ingress.port, timeout=10) as client:
        client.ehlo("customer.test")
        client.mail("alice@sender.test")
        client.rcpt("bob@example.test")
        code, reply = client.data(BODY)
    assert code == 250, reply
    queue_id = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-Z]+)", reply)
    assert queue_id, reply

    wait_until(lambda: len(destination.messages) == 1, what="delivery to mx.example.test")
    message = destination.messages[0]
    assert message.mail_from == "alice@sender.test"
    assert message.rcpt_tos == ("bob@example.test",)
    trace, _, rest = message.data.partition(b"\r\n\tfor <bob@example.test>;\r\n")
    assert trace.startswith(b"Received: from customer.test ([127.0.0.1])\r\n\tby relay.test (smarthost) with ESMTP id ")
    assert trace.endswith(queue_id.group(1))
    # One date line closes the header; then the customer's bytes, untouched.
    date_line, _, original = rest.partition(b"\r\n")
    assert date_line.startswith(b"\t")
    assert original == BODY


def test_client_outside_customer_networks_is_refused(relay: Relay, sinks: Callable[..., SmtpSink]) -> None:
    destination = sinks("example.test")
    policy = relay.start_policy()
    ingress = relay.start_ingress(policy, host="0.0.0.0")
    relay.start_delivery()

    with smtplib.SMTP("127.0.0.1", ingress.port, timeout=10, source_address=("127.0.0.9", 0)) as client:
        client.ehlo("stranger.test")
        code, reply = client.mail("mallory@sender.test")
        assert (code, reply[:5]) == (554, b"5.7.1"), reply
        code, _ = client.rcpt("bob@example.test")
        assert code == 503

    # A customer's message sent afterwards arrives alone: had the refused
    # one been queued, the single worker would have delivered it first.
    with smtplib.SMTP("127.0.0.1", ingress.port, timeout=10) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], BODY)
    wait_until(lambda: len(destination.messages) == 1, what="delivery of the customer's message")
    assert destination.handler.transactions == 1
    assert destination.messages[0].mail_from == "alice@sender.test"
