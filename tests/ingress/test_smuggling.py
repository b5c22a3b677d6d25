"""SMTP smuggling: only CRLF.CRLF ends DATA, and no bare CR or LF is ever queued.

Each test hides a second, pipelined transaction behind a sequence that some
server somewhere takes for the end of DATA. The ingress must see one
message, and queue bytes in which no next hop could find a second one.
"""

import re

import pytest
from support.ingress_stack import Ingress, IngressStack
from support.smtp_wire import Wire

SMUGGLED = (
    b"MAIL FROM:<mallory@sender.test>\r\n"
    b"RCPT TO:<victim@other.test>\r\n"
    b"DATA\r\n"
    b"From: ceo@sender.test\r\n"
    b"Subject: smuggled\r\n"
    b"\r\n"
    b"pay now\r\n"
)


def bare_cr_or_lf(data: bytes) -> list[int]:
    return [match.start() for match in re.finditer(rb"\r(?!\n)|(?<!\r)\n", data)]


@pytest.mark.parametrize(
    "sequence",
    [b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n"],
    ids=["LF.CRLF", "CRLF.LF", "LF.LF", "CR.CRLF", "CRLF.CR", "NUL-before-dot", "NUL-after-dot"],
)
def test_smuggled_transaction_stays_inside_the_one_message(
    stack: IngressStack, ingress: Ingress, sequence: bytes
) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        # The transaction pipelined (RFC 2920 allows it up to DATA), as an attacker would send it.
        wire.send(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert wire.reply().code == 250
        assert wire.reply().code == 250
        assert wire.reply().code == 354
        wire.send(b"Subject: hello\r\n\r\nfirst message" + sequence + SMUGGLED + b".\r\n")
        final = wire.reply()
        assert final.code == 250, final
        # The smuggled commands were message content: nothing answers them.
        assert wire.command("QUIT").code == 221

    messages = stack.queued()
    assert len(messages) == 1
    record, body = messages[0]
    assert [recipient.address for recipient in record.recipients] == ["bob@example.test"]
    assert record.mail_from == "alice@sender.test"
    assert bare_cr_or_lf(body) == []
    assert b"\x00" not in body
    # The smuggled text is there, as lines of the one message.
    assert b"\r\nRCPT TO:<victim@other.test>\r\n" in body


def test_bare_line_endings_in_commands_are_refused(stack: IngressStack, ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        # A bare LF would let one "line" carry two commands to a lenient parser.
        wire.send(b"MAIL FROM:<alice@sender.test>\nRCPT TO:<bob@example.test>\r\n")
        first = wire.reply()
        assert (first.code, first.enhanced) == (500, b"5.5.2")
        assert wire.reply().code == 503  # RCPT without an accepted MAIL
        wire.send(b"MAIL FROM:<alice@sender.test>\rRCPT TO:<bob@example.test>\r\n")
        assert (wire.reply().code, wire.command("RCPT TO:<bob@example.test>").code) == (500, 503)
        assert wire.command("MAIL FROM:<alice@sender.test>").code == 250
    assert stack.queued() == []


def test_end_of_data_is_only_crlf_dot_crlf_even_split_across_packets(stack: IngressStack, ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        for piece in (b"Subject: split\r\n\r\nline\r", b"\n.", b"\r", b"\n"):
            wire.send(piece)
        assert wire.reply().code == 250
    [(_, body)] = stack.queued()
    assert body.endswith(b"\r\n\r\nline\r\n")


def test_large_message_is_unstuffed_and_normalized_wherever_its_lines_fall(
    stack: IngressStack, ingress: Ingress
) -> None:
    """Lines are read in blocks of whatever arrived: stuffed dots, a bare LF and the end of DATA
    land anywhere in them, and the next pipelined command is not taken for content."""
    lines = [b"Subject: big", b""]
    for number in range(20000):
        lines.append(b"." * (number % 3) + b"line %d" % number)
        if number == 15000:
            lines.append(b"bare\nLF")
    sent = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        wire.send(sent + b".\r\nMAIL FROM:<alice@sender.test>\r\n")
        assert wire.reply().code == 250
        assert wire.reply().code == 250
    [(_, body)] = stack.queued()
    expected = b"".join(line + b"\r\n" for line in lines).replace(b"bare\nLF", b"bare\r\nLF")
    assert body.endswith(b"\r\n" + expected)
    assert bare_cr_or_lf(body) == []
