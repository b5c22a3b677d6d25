"""PROXY protocol: believed from the trusted load balancer only, required from it."""

import ipaddress
import struct
import time

import pytest
from support.ingress_stack import TRUSTED_PROXY, Ingress, IngressStack
from support.smtp_wire import Wire

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 25\r\n".encode()


def v2(client: str) -> bytes:
    addresses = ipaddress.IPv4Address(client).packed + ipaddress.IPv4Address("127.0.0.1").packed
    body = addresses + struct.pack("!HH", 40000, 25)
    # Version 2, command PROXY; TCP over IPv4.
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def v2_ipv6(client: str) -> bytes:
    addresses = ipaddress.IPv6Address(client).packed + ipaddress.IPv6Address("::1").packed
    body = addresses + struct.pack("!HH", 40000, 25)
    # Version 2, command PROXY; TCP over IPv6.
    return V2_SIGNATURE + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


def v2_local() -> bytes:
    return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
def test_trusted_balancer_names_the_client_the_policy_sees(
    stack: IngressStack, ingress: Ingress, header: object
) -> None:
    assert callable(header)
    # The balancer itself is no customer; the client it names is.
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY) as wire:
        wire.send(header("127.0.0.1"))
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        assert wire.command(b"Subject: proxied\r\n\r\nhi\r\n.").code == 250
    [(record, body)] = stack.queued()
    assert record.client_ip == "127.0.0.1"
    assert body.startswith(b"Received: from customer.test ([127.0.0.1])")

    # And a stranger behind the same balancer is refused as a stranger.
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY) as wire:
        wire.send(header("192.0.2.7"))
        wire.greeting()
        assert wire.command("EHLO stranger.test").code == 250
        refused = wire.command("MAIL FROM:<mallory@sender.test>")
        assert (refused.code, refused.enhanced) == (554, b"5.7.1")
        assert b"192.0.2.7" in refused.text


@pytest.mark.parametrize("header", [b"PROXY TCP6 ::1 ::1 40000 25\r\n", v2_ipv6("::1")], ids=["v1", "v2"])
def test_trusted_balancer_names_an_ipv6_client(stack: IngressStack, ingress: Ingress, header: bytes) -> None:
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY) as wire:
        wire.send(header)
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        assert wire.command(b"Subject: proxied over IPv6\r\n\r\nhi\r\n.").code == 250
    [(record, body)] = stack.queued()
    assert record.client_ip == "::1"
    assert body.startswith(b"Received: from customer.test ([::1])")


def test_trusted_balancer_that_sends_nothing_is_dropped_after_the_timeout(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_PROXY_TIMEOUT="1s")
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY, timeout=10) as wire:
        started = time.monotonic()
        assert wire.closed()
        # Closed by the PROXY timeout, not by the 5-minute command timeout; and no greeting.
        assert time.monotonic() - started < 8
        with pytest.raises(ConnectionError):
            wire.line()
    ingress.process.stop()


def test_health_check_without_client_address_is_the_balancer_itself(ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY) as wire:
        wire.send(v2_local())
        wire.greeting()
        assert wire.command("EHLO lb.test").code == 250
        assert TRUSTED_PROXY.encode() in wire.command("MAIL FROM:<a@sender.test>").text


@pytest.mark.parametrize(
    "opening",
    [b"EHLO customer.test\r\n", b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n", V2_SIGNATURE + b"\xff\xff\x00\x00"],
    ids=["missing", "malformed-v1", "malformed-v2"],
)
def test_trusted_balancer_without_a_valid_header_is_dropped(ingress: Ingress, opening: bytes) -> None:
    with Wire("127.0.0.1", ingress.port, source=TRUSTED_PROXY) as wire:
        wire.send(opening)
        assert wire.closed()
        with pytest.raises(ConnectionError):
            wire.line()  # not even a greeting


@pytest.mark.parametrize("header", [v1("127.0.0.1"), v2("127.0.0.1")], ids=["v1", "v2"])
def test_header_from_an_untrusted_peer_drops_the_connection(
    stack: IngressStack, ingress: Ingress, header: bytes
) -> None:
    # A stranger claiming to be a customer's address.
    with Wire("127.0.0.1", ingress.port, source="127.0.0.9") as wire:
        wire.greeting()
        wire.send(header + b"EHLO customer.test\r\nMAIL FROM:<mallory@sender.test>\r\n")
        # Whatever came before the drop (v2's first lines read as empty commands) refused nothing for MAIL.
        while True:
            try:
                reply = wire.reply()
            except ConnectionError:
                break
            assert reply.code == 500, reply
    assert stack.queued() == []
