"""RFC 2920 pipelining: a client that sends before a reply it must wait for is refused and disconnected.

Each forbidden form is sent with a raw socket, in one write, as a spam bot or
a smuggling attempt sends it. Legitimate pipelining (swaks, smtplib, and
Postfix's own smtp client relaying through the ingress) keeps working.
"""

import re
import smtplib
import ssl
from collections.abc import Iterator

import pytest
from support.ingress_clients import plain, swaks
from support.ingress_stack import (
    HOSTNAME,
    SUBMISSION_PASSWORD,
    SUBMISSION_USER,
    TRUSTED_PROXY,
    Ingress,
    IngressStack,
)
from support.postfix_instance import PostfixInstance
from support.scrape import Scrape
from support.smtp_wire import Wire
from support.waiting import wait_until

REFUSALS = "smarthost_ingress_pipelining_refusals_total"
TRANSACTION = b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"


def refusals(ingress: Ingress, after: str) -> float:
    return Scrape(ingress.metrics_port).value(REFUSALS, after=after)


def assert_refused(wire: Wire, awaited: bytes) -> None:
    """554 5.5.0 naming what the client should have waited for, then the connection closes."""
    reply = wire.reply()
    assert (reply.code, reply.enhanced) == (554, b"5.5.0"), reply
    assert b"synchronization" in reply.text and awaited in reply.text, reply
    assert wire.closed()


def test_content_before_the_354_is_refused_and_the_earlier_message_stays_queued(
    stack: IngressStack, ingress: Ingress
) -> None:
    """smtpsmug's `pipelining` test: a second transaction and its content behind the first message's end."""
    before = refusals(ingress, "data")
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        wire.send(TRANSACTION)
        assert [wire.reply().code for _ in range(3)] == [250, 250, 354]
        wire.send(
            b"Subject: first\r\n\r\nfirst message\r\n.\r\n"
            b"MAIL FROM:<mallory@sender.test>\r\nRCPT TO:<victim@other.test>\r\nDATA\r\n"
            b"Subject: second\r\n\r\nsmuggled\r\n.\r\n"
        )
        queued = wire.reply()
        assert (queued.code, queued.text[:18]) == (250, b"2.0.0 Ok: queued a"), queued
        assert [wire.reply().code for _ in range(2)] == [250, 250]
        assert_refused(wire, b"the reply to DATA")
    [(record, body)] = stack.queued()
    assert record.mail_from == "alice@sender.test"
    assert b"smuggled" not in body
    assert refusals(ingress, "data") == before + 1


@pytest.mark.parametrize(
    ("burst", "after", "allowed"),
    [
        (b"EHLO customer.test\r\nMAIL FROM:<alice@sender.test>\r\n", "EHLO", 0),
        (b"HELO customer.test\r\nMAIL FROM:<alice@sender.test>\r\n", "HELO", 0),
        (b"QUIT\r\nNOOP\r\n", "QUIT", 0),
        # CVE-2024-34083's form: plain text that must not run inside the TLS session.
        (b"STARTTLS\r\nMAIL FROM:<injected@sender.test>\r\n", "STARTTLS", 0),
        # RSET, MAIL and RCPT may be pipelined and are answered; DATA ends the group.
        (b"RSET\r\n" + TRANSACTION + b"Subject: early\r\n\r\nearly\r\n.\r\n", "DATA", 3),
    ],
    ids=["EHLO", "HELO", "QUIT", "STARTTLS", "DATA"],
)
def test_input_after_a_command_that_ends_a_group_is_refused(
    stack: IngressStack, ingress: Ingress, burst: bytes, after: str, allowed: int
) -> None:
    before = refusals(ingress, after.lower())
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        if after != "EHLO":
            assert wire.command("EHLO customer.test").code == 250
        wire.send(burst)
        assert [wire.reply().code for _ in range(allowed)] == [250] * allowed
        assert_refused(wire, f"the reply to {after}".encode())
    assert stack.queued() == []
    assert refusals(ingress, after.lower()) == before + 1


def test_input_before_the_greeting_is_refused(stack: IngressStack, ingress: Ingress) -> None:
    before = refusals(ingress, "connect")
    # Through a trusted load balancer the client's bytes follow the PROXY header in the same write.
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY) as wire:
        wire.send(b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 25\r\nEHLO customer.test\r\n")
        assert_refused(wire, b"the greeting")
    assert refusals(ingress, "connect") == before + 1


def test_a_client_that_waits_for_nothing_is_refused(stack: IngressStack, ingress: Ingress) -> None:
    """Sent at once on connecting: refused at the greeting, or at EHLO if the greeting left first."""
    before = Scrape(ingress.metrics_port).value(REFUSALS)
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.send(b"EHLO customer.test\r\n" + TRANSACTION + b"Subject: bot\r\n\r\nspam\r\n.\r\nQUIT\r\n")
        reply = wire.reply()
        if reply.code == 220:
            assert_refused(wire, b"the reply to EHLO")
        else:
            assert (reply.code, reply.enhanced) == (554, b"5.5.0"), reply
            assert b"the greeting" in reply.text and wire.closed()
    assert stack.queued() == []
    assert Scrape(ingress.metrics_port).value(REFUSALS) == before + 1


@pytest.fixture
def submission(stack: IngressStack, ingress: Ingress, client_tls: ssl.SSLContext) -> Iterator[Wire]:
    """A session on the submission port after STARTTLS and EHLO, not yet authenticated."""
    with Wire("127.0.0.1", ingress.submission_port) as wire:
        wire.greeting()
        assert wire.command("EHLO laptop.test").code == 250
        assert wire.command("STARTTLS").code == 220
        wire.starttls(client_tls, HOSTNAME)
        assert wire.command("EHLO laptop.test").code == 250
        yield wire


def test_input_after_auth_is_refused(stack: IngressStack, submission: Wire) -> None:
    submission.send(f"AUTH PLAIN {plain(SUBMISSION_USER, SUBMISSION_PASSWORD)}\r\n".encode() + TRANSACTION)
    assert_refused(submission, b"the reply to AUTH")


def test_login_answers_sent_before_their_challenge_are_refused(stack: IngressStack, submission: Wire) -> None:
    assert submission.command("AUTH LOGIN").code == 334
    submission.send(b"d2ViMUByb2FtaW5nLnRlc3Q=\r\nc2VjcmV0\r\n")
    assert_refused(submission, b"the reply to AUTH")


def login_and_pipeline_a_message(wire: Wire) -> list[int]:
    """AUTH, then a whole message and QUIT in one write; the reply codes."""
    assert wire.command(f"AUTH PLAIN {plain(SUBMISSION_USER, SUBMISSION_PASSWORD)}").code == 235
    wire.send(TRANSACTION + b"Subject: eager\r\n\r\nsent without waiting\r\n.\r\nQUIT\r\n")
    codes = []
    while True:
        reply = wire.reply()
        codes.append(reply.code)
        if reply.code not in (250, 354):
            return codes


def test_the_rule_holds_after_auth_by_default(stack: IngressStack, submission: Wire) -> None:
    assert login_and_pipeline_a_message(submission) == [250, 250, 554]
    assert submission.closed()
    assert stack.queued() == []


def test_operators_can_let_authenticated_clients_pipeline_freely(
    stack: IngressStack, client_tls: ssl.SSLContext
) -> None:
    relaxed = stack.start_ingress(SMARTHOST_FORBID_UNAUTH_PIPELINING="false")
    with Wire("127.0.0.1", relaxed.submission_port) as wire:
        wire.greeting()
        assert wire.command("EHLO laptop.test").code == 250
        assert wire.command("STARTTLS").code == 220
        wire.starttls(client_tls, HOSTNAME)
        assert wire.command("EHLO laptop.test").code == 250
        assert login_and_pipeline_a_message(wire) == [250, 250, 354, 250, 221]
    [(record, _)] = stack.queued()
    assert record.customer == "roaming"
    # Clients that have not logged in are still held to the rule.
    with Wire("127.0.0.1", relaxed.port) as wire:
        wire.greeting()
        wire.send(b"EHLO customer.test\r\nMAIL FROM:<alice@sender.test>\r\n")
        assert_refused(wire, b"the reply to EHLO")
    relaxed.process.stop()


def test_swaks_pipelines_after_auth(stack: IngressStack, ingress: Ingress) -> None:
    result = swaks(
        stack,
        ingress.submission_port,
        "--pipeline",
        "--auth", "PLAIN",
        "--auth-user", SUBMISSION_USER,
        "--auth-password", SUBMISSION_PASSWORD,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert " ~> MAIL FROM:<alice@sender.test>\n ~> RCPT TO:<bob@example.test>\n ~> DATA\n<~  250 " in result.stdout
    [(record, _)] = stack.queued()
    assert record.customer == "roaming"


def test_smtplib_sends_several_messages_in_one_session(stack: IngressStack, ingress: Ingress) -> None:
    with smtplib.SMTP("127.0.0.1", ingress.port, timeout=20) as client:
        client.ehlo("customer.test")
        for number in range(3):
            client.sendmail("alice@sender.test", ["bob@example.test"], f"Subject: {number}\r\n\r\nhello\r\n")
    assert len(stack.queued()) == 3


def smtp_client_lines(maillog: str) -> list[str]:
    """What Postfix's smtp processes sent (`>`) and read (`<`), each process's lines in order, from its debug log."""
    processes: dict[str, list[str]] = {}
    for match in re.finditer(r"postfix/smtp\[(\d+)\]: ([<>]) [^ ]+: (\S+)", maillog):
        pid, direction, word = match.groups()
        processes.setdefault(pid, []).append(f"{direction} {word}")
    return [line for lines in processes.values() for line in lines]


def test_postfix_relays_through_the_ingress(stack: IngressStack, ingress: Ingress) -> None:
    """A customer's Postfix with relayhost = the ingress: its smtp client pipelines what RFC 2920 allows."""
    before = Scrape(ingress.metrics_port).value(REFUSALS)
    postfix = PostfixInstance(relay_port=ingress.port)
    try:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=20) as client:
            for number in range(2):
                client.sendmail(
                    "alice@sender.test",
                    ["bob@example.test", "carol@other.test"],
                    f"Subject: through Postfix {number}\r\n\r\nhello\r\n",
                )
        wait_until(lambda: len(stack.queued()) == 2, timeout=60, what="both messages relayed by Postfix")
        wait_until(lambda: postfix.log().count("status=sent") == 4, timeout=15, what="Postfix logs the relay")
        lines = smtp_client_lines(postfix.log())
    except BaseException:
        print(postfix.log())
        raise
    finally:
        postfix.stop()
    # After STARTTLS and EHLO: MAIL, both RCPTs and DATA before reading any reply, for each message.
    pipelined = ["> MAIL", "> RCPT", "> RCPT", "> DATA", "< 250", "< 250", "< 250", "< 354", "> ."]
    starts = [index for index, line in enumerate(lines) if line == "> MAIL"]
    assert [lines[start : start + len(pipelined)] for start in starts] == [pipelined, pipelined], lines
    for record, body in stack.queued():
        assert [rcpt.address for rcpt in record.recipients] == ["bob@example.test", "carol@other.test"]
        assert record.customer == "loopback"
        assert b"(using TLSv1.3 with cipher " in body
    assert Scrape(ingress.metrics_port).value(REFUSALS) == before
