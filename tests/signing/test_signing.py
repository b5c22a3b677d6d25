"""Signatures made for a customer's domains verify with dkimpy against the records DNS serves."""

from collections.abc import Callable

import pytest

from smarthost_common.dkim import DkimKey, sign

MESSAGE = (
    b"From: Alice <alice@acme.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: quarterly\r\n"
    b"  figures\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <q4@acme.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-Mailer: accounting\r\n"
    b"\r\n"
    b"The figures are attached.\r\n"
    b"\r\n"
)

Verify = Callable[..., bool]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_a_signed_message_verifies_and_a_changed_one_does_not(
    kind: str, rsa_key: DkimKey, ed25519_key: DkimKey, verify: Verify
) -> None:
    key = rsa_key if kind == "rsa" else ed25519_key
    signature = sign(MESSAGE, [key])
    assert signature is not None
    assert verify(signature + MESSAGE)
    # relaxed/relaxed: re-folded headers and trailing spaces, as relays make them, still verify.
    refolded = MESSAGE.replace(b"Subject: quarterly\r\n  figures", b"Subject:   quarterly figures").replace(
        b"attached.\r\n", b"attached.  \r\n"
    )
    assert verify(signature + refolded)
    # Headers outside the signed set may be added or changed on the way.
    assert verify(signature + MESSAGE.replace(b"X-Mailer: accounting", b"X-Mailer: other\r\nX-Spam: no"))
    assert not verify(signature + MESSAGE.replace(b"attached", b"enclosed"))
    assert not verify(signature + MESSAGE.replace(b"Subject: quarterly", b"Subject: urgent"))


def test_a_second_from_cannot_be_slipped_in(rsa_key: DkimKey, verify: Verify) -> None:
    """From is oversigned: a From added anywhere breaks the signature."""
    signature = sign(MESSAGE, [rsa_key])
    assert signature is not None
    assert not verify(signature + b"From: Mallory <boss@acme.test>\r\n" + MESSAGE)
    assert not verify(signature + MESSAGE.replace(b"\r\n\r\n", b"\r\nFrom: Mallory <boss@acme.test>\r\n\r\n", 1))


def test_a_domain_with_two_keys_gets_two_signatures(rsa_key: DkimKey, ed25519_key: DkimKey, verify: Verify) -> None:
    signatures = sign(MESSAGE, [rsa_key, ed25519_key])
    assert signatures is not None
    assert signatures.count(b"DKIM-Signature:") == 2
    assert verify(signatures + MESSAGE, 0)
    assert verify(signatures + MESSAGE, 1)


def test_a_domain_the_customer_does_not_own_is_left_unsigned(rsa_key: DkimKey, ed25519_key: DkimKey) -> None:
    keys = [rsa_key, ed25519_key]
    assert sign(MESSAGE.replace(b"alice@acme.test", b"alice@other.test"), keys) is None
    assert sign(MESSAGE.replace(b"alice@acme.test", b"alice@mail.acme.test"), keys) is None
    assert sign(MESSAGE.replace(b"<alice@acme.test>", b"<alice@acme.test>, <eve@other.test>"), keys) is None
    assert sign(MESSAGE.replace(b"From: Alice <alice@acme.test>\r\n", b""), keys) is None
