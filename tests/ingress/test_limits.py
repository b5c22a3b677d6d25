"""Resource limits: connections, recipients, errors, timeouts, header size, DATA memory."""

import threading
import time
from pathlib import Path

from support.ingress_stack import IngressStack
from support.smtp_wire import Reply, Wire

MiB = 1024 * 1024


def test_connections_per_client_ip_and_in_total(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_MAX_CONNECTIONS="4", SMARTHOST_MAX_CONNECTIONS_PER_IP="2")
    time.sleep(0.5)  # the start-up probes' connections are gone
    held = [Wire("127.0.0.1", ingress.port, source=source) for source in ("127.0.0.1", "127.0.0.1")]
    try:
        for wire in held:
            wire.greeting()
        with Wire("127.0.0.1", ingress.port) as third:
            refused = third.reply()
            assert (refused.code, refused.enhanced) == (421, b"4.7.0")
            assert third.closed()
        held += [Wire("127.0.0.1", ingress.port, source=source) for source in ("127.0.0.12", "127.0.0.13")]
        for wire in held[2:]:
            wire.greeting()
        with Wire("127.0.0.1", ingress.port, source="127.0.0.14") as fifth:
            assert fifth.reply().code == 421
        held.pop(0).sock.close()
        time.sleep(0.5)
        with Wire("127.0.0.1", ingress.port) as again:
            again.greeting()
    finally:
        for wire in held:
            wire.sock.close()


def test_recipients_per_message(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_MAX_RECIPIENTS="3")
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        assert wire.command("MAIL FROM:<alice@sender.test>").code == 250
        codes = [wire.command(f"RCPT TO:<r{n}@example.test>").code for n in range(5)]
        assert codes == [250, 250, 250, 452, 452]


def test_command_and_data_timeouts(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_COMMAND_TIMEOUT="1s", SMARTHOST_DATA_TIMEOUT="2s")
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        timed_out = wire.reply()
        assert (timed_out.code, timed_out.enhanced) == (421, b"4.4.2")
        assert wire.closed()
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        # Data trickling in keeps the transfer alive past the command timeout...
        for _ in range(3):
            wire.send(b"X-Slow: yes\r\n")
            time.sleep(0.8)
        # ...silence does not.
        assert wire.reply().code == 421
        assert wire.closed()
    assert stack.queued() == []


def test_header_size(stack: IngressStack) -> None:
    ingress = stack.start_ingress(SMARTHOST_MAX_HEADER_SIZE="2000")
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
            assert wire.command(command).code == 250
        assert wire.command("DATA").code == 354
        folded = b"Subject: long\r\n" + b"\tcontinued header line\r\n" * 100
        refused = wire.command(folded + b"\r\nbody\r\n.")
        assert (refused.code, refused.enhanced) == (554, b"5.6.0")
        # The same bytes in the body are fine.
        assert wire.command("MAIL FROM:<alice@sender.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        assert wire.command(b"Subject: short\r\n\r\n" + folded + b".").code == 250


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_concurrent_large_transfers_stay_within_the_memory_budget(stack: IngressStack) -> None:
    budget = 56 * MiB
    ingress = stack.start_ingress(SMARTHOST_DATA_MEMORY_LIMIT=str(budget), SMARTHOST_DATA_MEMORY_WAIT="0s")
    baseline = peak_rss(ingress.process.pid)
    size, clients = 12 * MiB, 6
    line = b"x" * 76 + b"\r\n"
    body = b"Subject: large\r\n\r\n" + line * (size // len(line)) + b".\r\n"
    results: list[Reply] = []

    def send() -> None:
        with Wire("127.0.0.1", ingress.port, timeout=120) as wire:
            wire.greeting()
            for command in ("EHLO customer.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.test>"):
                assert wire.command(command).code == 250
            reply = wire.command("DATA")
            if reply.code == 354:
                wire.send(body)
                reply = wire.reply()
            results.append(reply)

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    growth = peak_rss(ingress.process.pid) - baseline
    codes = sorted(reply.code for reply in results)
    print(
        f"{clients} x {size // MiB} MiB with a {budget // MiB} MiB budget: replies {codes}, "
        f"peak RSS +{growth / MiB:.0f} MiB over {baseline / MiB:.0f} MiB"
    )
    assert len(results) == clients
    # Some fit in the budget; the others were told to come back later, not lost.
    assert set(codes) <= {250, 452} and 250 in codes and 452 in codes, codes
    assert len(stack.queued()) == codes.count(250)
    # Without the budget, six transfers would hold 72 MiB of content. Each
    # reserves twice its size (room for the disk tier's copy); the write to
    # Redis copies nothing. Measured: about 0.55 x the budget.
    assert growth < budget, f"peak RSS grew by {growth / MiB:.0f} MiB"
