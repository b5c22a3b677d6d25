"""Malformed input: every reply stays valid SMTP, the process survives, the next session works."""

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.ingress_stack import Ingress, IngressStack
from support.smtp_wire import Wire

VERBS = [b"EHLO", b"HELO", b"MAIL FROM:", b"RCPT TO:", b"RSET", b"NOOP", b"VRFY", b"HELP", b"EXPN"]


def assert_next_session_works(stack: IngressStack, ingress: Ingress) -> None:
    assert ingress.process.alive()
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        assert wire.command(b"Subject: still here\r\n\r\nok\r\n.").code == 250
    assert len(stack.queued()) >= 1


def test_over_long_lines_nul_and_8bit_garbage(stack: IngressStack, ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for line in (
            b"EHLO " + b"a" * 100_000,
            b"HELO \x00\x00\x00",
            b"\x00" * 10,
            b"\xff\xfe\x80 garbage \xc3\x28",
            b"MAIL FROM:<\x00@sender.test>",
            b"EHLO x\x00y",
            b"MAIL FROM:<alice@sender.test> SIZE=\xff",
        ):
            reply = wire.command(line)
            assert 400 <= reply.code < 600 or line.startswith((b"HELO", b"EHLO x")), (line, reply)
        # An over-long line inside DATA refuses that message, not the session.
        assert wire.command("EHLO customer.test").code == 250
        assert wire.command("MAIL FROM:<alice@sender.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        refused = wire.command(b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n\xff\x00\xfe\r\n.")
        assert (refused.code, refused.enhanced) == (554, b"5.6.0"), refused
        assert wire.command("NOOP").code == 250
    assert stack.queued() == []
    assert_next_session_works(stack, ingress)


def test_hundreds_of_unknown_commands_end_the_session_with_421(stack: IngressStack, ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        wire.send(b"".join(b"XYZZY%d\r\n" % n for n in range(500)))
        codes = []
        while True:
            reply = wire.reply()
            codes.append((reply.code, reply.enhanced))
            if reply.code == 421:
                break
        assert codes[-1] == (421, b"4.7.0")
        assert set(codes[:-1]) == {(500, b"5.5.2")}
        assert len(codes) == 21  # the default SMARTHOST_MAX_ERRORS, then 421
        assert wire.closed()
    assert_next_session_works(stack, ingress)


def test_client_vanishing_mid_data_queues_nothing(stack: IngressStack, ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        wire.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
        wire.sock.shutdown(socket.SHUT_RDWR)
    assert_next_session_works(stack, ingress)
    assert len(stack.queued()) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [b"EHLO", b"HELO", b"MAIL FROM:", b"RCPT TO:", b"DATA", b"AUTH", b"STARTTLS", b"VRFY"]
            ).flatmap(lambda verb: st.binary(max_size=200).map(lambda arg: verb + b" " + arg)),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_random_command_lines_get_valid_replies(stack: IngressStack, ingress: Ingress, lines: list[bytes]) -> None:
    with Wire("127.0.0.1", ingress.port, timeout=20) as wire:
        wire.greeting()
        for line in lines:
            # One command per line: the line's own CR/LF would make it several.
            line = line.replace(b"\r", b"").replace(b"\n", b"")
            # These change the session rather than get one reply; a PROXY header from
            # an untrusted peer drops the connection (tests/ingress/test_proxy.py).
            if line.upper().startswith((b"DATA", b"STARTTLS", b"AUTH", b"QUIT", b"PROXY ")):
                continue
            reply = wire.command(line)
            if reply.code == 421:
                break
        else:
            assert wire.command("QUIT").code == 221
    assert ingress.process.alive()
