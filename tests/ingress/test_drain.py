"""SIGTERM: readiness false, listeners closed, transactions finish or get 421, nothing half-queued."""

import signal
import socket
import urllib.error
import urllib.request

from support.ingress_stack import Ingress, IngressStack
from support.smtp_wire import Wire
from support.waiting import wait_until


def ready(ingress: Ingress) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ingress.metrics_port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def start_data(wire: Wire) -> None:
    wire.greeting()
    for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
        assert wire.command(command).code == 250
    assert wire.command("DATA").code == 354
    wire.send(b"Subject: in flight\r\n\r\nfirst half\r\n")


def test_transaction_in_progress_completes_during_the_drain(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_DRAIN_TIMEOUT="30s")
    with Wire("127.0.0.1", ingress.port) as busy, Wire("127.0.0.1", ingress.port) as idle:
        start_data(busy)
        idle.greeting()
        assert idle.command("EHLO idle.test").code == 250

        ingress.process.signal(signal.SIGTERM)
        wait_until(lambda: not ready(ingress), timeout=10, what="readiness false")
        wait_until(lambda: refuses_connections(ingress.port), timeout=10, what="listener closed")
        # A session between transactions is told at once.
        closing = idle.reply()
        assert (closing.code, closing.enhanced) == (421, b"4.3.2")
        assert idle.closed()

        busy.send(b"second half\r\n.\r\n")
        done = busy.reply()
        assert done.code == 250, done
        after = busy.command("MAIL FROM:<alice@sender.test>")
        assert (after.code, after.enhanced) == (421, b"4.3.2")
        assert busy.closed()
    assert ingress.process.wait(timeout=20) == 0
    [(_, body)] = stack.queued()
    assert body.endswith(b"\r\n\r\nfirst half\r\nsecond half\r\n")


def test_transfer_unfinished_at_the_deadline_gets_421_and_is_not_queued(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_DRAIN_TIMEOUT="2s")
    with Wire("127.0.0.1", ingress.port) as wire:
        start_data(wire)
        ingress.process.signal(signal.SIGTERM)
        reply = wire.reply()
        assert (reply.code, reply.enhanced) == (421, b"4.3.2")
        assert wire.closed()
    assert ingress.process.wait(timeout=20) == 0
    assert stack.queued() == []
