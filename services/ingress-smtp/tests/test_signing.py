"""The ingress signs with the keys the policy hands over, parses each key once, and never loses a message to it."""

import asyncio
import time
from unittest import mock

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_common.dkim import key_from_bytes
from smarthost_ingress import signing
from smarthost_ingress.metrics import DKIM_SIGNATURES
from smarthost_ingress.signing import INLINE_MAX, Signer, from_header_domain

PEM = ed25519.Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
KEY = pb.DkimKey(domain="acme.test", selector="ed2026", private_key=PEM)
HEADER = b"From: Alice <alice@acme.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\n"


@pytest.mark.parametrize(
    ("message", "domain"),
    [
        (HEADER + b"Hello\r\n", "acme.test"),
        (b"Subject: x\r\nFROM :\r\n  Alice <alice@Acme.Test>\r\n\r\nbody", "acme.test"),
        (b"From: a@acme.test, b@other.test\r\n\r\n", ""),
        (b"From: a@acme.test\r\nFrom: b@acme.test\r\n\r\n", ""),
        (b"Subject: no from\r\n\r\nFrom: a@acme.test\r\n", ""),
        (b"From: <>\r\n\r\n", ""),
    ],
)
def test_the_from_domain_the_policy_is_asked_about(message: bytes, domain: str) -> None:
    assert from_header_domain(bytearray(message)) == domain


def count(result: str) -> float:
    return float(DKIM_SIGNATURES.labels(result=result)._value.get())


def verifies(message: bytes) -> bool:
    record = key_from_bytes(KEY.domain, KEY.selector, PEM).record.encode()
    return bool(dkim.DKIM(message).verify(dnsfunc=lambda name, timeout=5: record))


@pytest.mark.parametrize("body_size", [10, INLINE_MAX + 10])
def test_a_signature_verifies_and_the_key_is_parsed_once(body_size: int) -> None:
    signer = Signer()
    message = bytearray(HEADER + b"x" * body_size + b"\r\n")
    signed = count("signed")
    with mock.patch.object(signing, "key_from_bytes", wraps=key_from_bytes) as parse:
        for _ in range(2):
            header, names = asyncio.run(signer.sign("q1", message, [KEY]))
    assert parse.call_count == 1
    assert names == "acme.test/ed2026"
    assert verifies(header + bytes(message))
    assert count("signed") == signed + 2


def test_no_key_for_the_from_domain_leaves_the_message_unsigned() -> None:
    unsigned = count("unsigned")
    other = bytearray(HEADER.replace(b"acme.test", b"other.test"))
    assert asyncio.run(Signer().sign("q1", other, [KEY])) == (b"", "")
    assert asyncio.run(Signer().sign("q1", bytearray(HEADER), [])) == (b"", "")
    assert count("unsigned") == unsigned + 2


def test_a_bad_key_queues_the_message_unsigned(caplog: pytest.LogCaptureFixture) -> None:
    errors = count("error")
    bad = pb.DkimKey(domain="acme.test", selector="s1", private_key=b"not a key")
    assert asyncio.run(Signer().sign("q1", bytearray(HEADER), [bad])) == (b"", "")
    assert count("error") == errors + 1
    assert "DKIM signing failed, queued unsigned" in caplog.text


def test_large_messages_are_signed_one_at_a_time() -> None:
    """Each holds twice its size in copies while signed, outside the DATA memory budget."""
    running: list[int] = []
    active = 0

    def slow_sign(message: bytearray, keys: object) -> bytes:
        nonlocal active
        active += 1
        running.append(active)
        time.sleep(0.05)
        active -= 1
        return b"DKIM-Signature: x\r\n"

    async def both() -> None:
        signer = Signer()
        large = bytearray(HEADER + b"x" * INLINE_MAX)
        await asyncio.gather(*(signer.sign(f"q{n}", large, [KEY]) for n in range(3)))

    with mock.patch.object(signing, "sign", slow_sign):
        asyncio.run(both())
    assert running == [1, 1, 1]
