"""Every reply leaves in one write, and the replies to a pipelined group together.

A client that reads one piece of a multi-line reply as the whole of it reads
every later reply as the answer to the command before: nmap's
`smtp-open-relay` did, and never reached a verdict.
"""

import shutil
import subprocess

from support.ingress_stack import STRANGER, Ingress
from support.scrape import Scrape
from support.smtp_wire import Wire

NMAP = shutil.which("nmap") or "/usr/bin/nmap"


def one_read(wire: Wire) -> bytes:
    data = wire.sock.recv(65536)
    assert data.endswith(b"\r\n"), data
    return data


def test_the_ehlo_reply_arrives_whole_in_one_read(ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        wire.send(b"EHLO customer.test\r\n")
        lines = one_read(wire).splitlines()
        assert lines[0] == b"250-relay.test"
        assert lines[-1] == b"250 STARTTLS"
        assert all(line.startswith(b"250-") for line in lines[:-1])


def test_replies_to_a_pipelined_group_arrive_together(ingress: Ingress) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        wire.send(
            b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<carol@other.test>\r\nDATA\r\n"
        )
        assert [line[:3] for line in one_read(wire).splitlines()] == [b"250", b"250", b"250", b"354"]
        wire.send(b"Subject: together\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        assert [line[:3] for line in one_read(wire).splitlines()] == [b"250", b"221"]


def open_relay_scan(ingress: Ingress, source: str, *args: str) -> str:
    """nmap's smtp-open-relay script from `source`, a loopback address of its own; its output."""
    result = subprocess.run(
        [NMAP, "-n", "-Pn", "-sV", "-e", "lo", "-S", source, "-p", str(ingress.port), "-vv",
         "--script", "smtp-open-relay", *args, "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_nmap_from_outside_the_customer_networks_reaches_its_verdict(ingress: Ingress) -> None:
    output = open_relay_scan(ingress, STRANGER)
    assert "smtp-open-relay: Server doesn't seem to be an open relay, all tests failed" in output, output


def test_nmap_from_a_customer_stays_in_step(ingress: Ingress) -> None:
    """16 forms: RSET, MAIL, and RCPT when MAIL was accepted; each reply read as the answer to its command."""
    before = Scrape(ingress.metrics_port)
    output = open_relay_scan(ingress, "127.0.0.1", "--script-args", "smtp-open-relay.domain=example.test")
    after = Scrape(ingress.metrics_port)
    # Only the two forms whose sender and recipient are routable: the others' refusals were read as refusals.
    assert (
        "smtp-open-relay: Server is an open relay (2/16 tests)\n"
        "|  MAIL FROM:<> -> RCPT TO:<relaytest@example.test>\n"
        "|_ MAIL FROM:<antispam@example.test> -> RCPT TO:<relaytest@example.test>\n"
    ) in output, output

    def replies(stage: str, reply_class: str) -> float:
        name = "smarthost_ingress_replies_total"
        labels = {"stage": stage, "class": reply_class}
        return after.value(name, **labels) - before.value(name, **labels)

    assert replies("rset", "2xx") == 16
    # antispam@relay.test (the banner's name) does not resolve; antispam@[127.0.0.1] is an address literal.
    assert (replies("mail", "2xx"), replies("mail", "5xx")) == (2, 14)
    assert (replies("rcpt", "2xx"), replies("rcpt", "5xx")) == (2, 0)
