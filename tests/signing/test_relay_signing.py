"""Mail through the real ingress, policy and delivery arrives signed for the domains its customer owns."""

import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from dkim.util import parse_tag_value
from support.relay import Relay
from support.scrape import Scrape
from support.sinks import SmtpSink
from support.waiting import wait_until

from signing.conftest import write_key
from smarthost_common.dkim import DkimKey, load_key

Verify = Callable[..., bool]
# A second customer, on its own loopback address.
BRAVO_IP = "127.0.0.5"


@pytest.fixture
def ed25519_key(tmp_path: Path) -> DkimKey:
    """Bravo's key (overrides the acme.test one the folder's DNS zone publishes)."""
    return load_key("bravo.test", "ed2026", write_key(tmp_path / "bravo.pem", ed25519.Ed25519PrivateKey.generate()))


def message(sender: str, subject: str) -> bytes:
    return (
        f"From: Sender <{sender}>\r\nTo: Bob <bob@example.test>\r\nSubject: {subject}\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nHello Bob,\r\n.dotted line\r\n"
    ).encode()


def send(port: int, source: str, sender: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0)) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], message(sender, subject))


def test_each_customer_signs_its_own_domain_only(
    relay: Relay,
    sinks: Callable[..., SmtpSink],
    tmp_path: Path,
    rsa_key: DkimKey,
    ed25519_key: DkimKey,
    verify: Verify,
) -> None:
    relay.policy_file.write_text(
        "customers:\n"
        "  - name: acme\n    networks: [127.0.0.1/32]\n    dkim:\n"
        f"      - {{domain: acme.test, selector: rsa2026, keyFile: {tmp_path / 'rsa.pem'}}}\n"
        f"  - name: bravo\n    networks: [{BRAVO_IP}/32]\n    dkim:\n"
        "      - {domain: bravo.test, selector: ed2026, keyFile: bravo.pem}\n"
    )
    destination = sinks("example.test")
    ingress = relay.start_ingress(relay.start_policy(), host="0.0.0.0")
    relay.start_delivery()

    send(ingress.port, "127.0.0.1", "alice@acme.test", "rsa")
    send(ingress.port, BRAVO_IP, "bob@Bravo.Test", "ed25519")
    # bravo.test is not acme's: its mail is relayed, unsigned.
    send(ingress.port, "127.0.0.1", "mallory@bravo.test", "not yours")
    wait_until(lambda: len(destination.messages) == 3, what="delivery of the three messages")

    received = {m.data.split(b"Subject: ")[1].split(b"\r\n")[0]: m.data for m in destination.messages}
    for subject, key in ((b"rsa", rsa_key), (b"ed25519", ed25519_key)):
        data = received[subject]
        # The relay's Received: header stays on top, outside the signature.
        assert data.startswith(b"Received: ")
        assert data.count(b"DKIM-Signature:") == 1
        tags = parse_tag_value(data.split(b"DKIM-Signature:")[1].split(b"\r\nFrom:")[0])
        assert (tags[b"d"], tags[b"s"]) == (key.domain.encode(), key.selector.encode())
        assert verify(data)
    assert b"DKIM-Signature:" not in received[b"not yours"]

    scrape = Scrape(ingress.metrics_port)
    assert scrape.by("smarthost_ingress_dkim_signatures_total", "result") == {"signed": 2, "unsigned": 1}
    assert "acme.test/rsa2026" in ingress.process.log()
