"""DKIM keys are checked once when read; which messages are signed; how a published record is compared."""

import base64
import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.util import parse_tag_value

from smarthost_common.dkim import (
    DkimKey,
    DkimKeyError,
    _Signer,
    from_domain,
    key_from_bytes,
    load_key,
    record_mismatch,
    sign,
)

# cryptography makes no RSA key this short; a throwaway one made with openssl.
RSA_512 = b"""-----BEGIN PRIVATE KEY-----
MIIBVwIBADANBgkqhkiG9w0BAQEFAASCAUEwggE9AgEAAkEAyGpvrzAxuYKC0n0j
o1S2d54NXODBAbqmHydKdh8F8LRTBq5aB6SICdmoB0il1GCVd2rDUt7BJW02Pa26
sbmvQwIDAQABAkEAjx+DlqZiPEq5xjvbwX5zuETE4jkXXHbAv6q9gFFzWosIpwY0
5gchxNbmWU96WGwqDUTLNtIz6rUGEsRqpFmWAQIhAOtIh+I22KPv4Q+eFFw8n+C/
IV7YGoBogfTQV8r6B+LDAiEA2g/2rw9REnQATSUHaikr4/uEeaZluAfLzLZpBLqB
OYECIQCgVx9zRBlDL1hbAkmxygbSbK5bKj51P8NAiTMrOlVhbQIhAILi/BV9oxLp
b9jeNgIhrkeMi6qdFwcMHubEQmrlK3WBAiEAp/QVDzgPwwZsSWFyFVHB+xLG3uNt
WkmXsIY7utda8Ns=
-----END PRIVATE KEY-----
"""
MESSAGE = b"From: Alice <alice@acme.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello\r\n"


def pem(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ed25519_key(domain: str = "acme.test") -> DkimKey:
    return key_from_bytes(domain, "s1", pem(ed25519.Ed25519PrivateKey.generate()))


def test_rsa_and_ed25519_keys_give_their_records() -> None:
    rsa_key = key_from_bytes("Acme.Test", "s1", pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    assert (rsa_key.domain, rsa_key.kind, rsa_key.record_name) == ("acme.test", "rsa", "s1._domainkey.acme.test")
    assert rsa_key.record.startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
    # A 2048-bit key's record does not fit one TXT string.
    assert [len(part) for part in rsa_key.record_strings][:1] == [255]
    assert "".join(rsa_key.record_strings) == rsa_key.record
    ed_key = ed25519_key()
    assert ed_key.kind == "ed25519"
    assert len(base64.b64decode(ed_key.public)) == 32
    assert ed_key.record_strings == [ed_key.record]


def test_a_bare_base64_ed25519_seed_is_read_too() -> None:
    """The form dkimpy's dknewkey writes."""
    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    from_seed = key_from_bytes("acme.test", "s1", base64.b64encode(seed) + b"\n")
    assert from_seed == key_from_bytes("acme.test", "s1", pem(private))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file or directory"),
        (b"", "neither a PEM private key nor a base64 Ed25519 seed"),
        (b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n", "not a usable PEM private key"),
        (pem(ec.generate_private_key(ec.SECP256R1())), "DKIM signs with RSA or Ed25519 keys"),
        (RSA_512, "an RSA key of 512 bits; DKIM needs at least 1024"),
    ],
)
def test_unusable_keys_are_refused_naming_domain_and_file(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "acme.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DkimKeyError) as refused:
        load_key("acme.test", "s1", path)
    assert str(refused.value).startswith(f"DKIM key of acme.test: {path}: ")
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("values", "domain"),
    [
        ([b" Alice <alice@Acme.TEST>"], "acme.test"),
        ([b" alice@acme.test"], "acme.test"),
        ([b' "bob@example.test" <alice@acme.test>'], "acme.test"),
        ([" <anna@bücher.test>".encode()], "xn--bcher-kva.test"),
        ([b" alice@acme.test, bob@example.test"], None),
        ([b" alice@acme.test", b" bob@acme.test"], None),
        ([], None),
        ([b" undisclosed"], None),
        ([b" <@acme.test>"], None),
    ],
)
def test_the_one_from_address_names_the_domain(values: list[bytes], domain: str | None) -> None:
    assert from_domain(values) == domain


def test_only_the_customers_domains_are_signed() -> None:
    key = ed25519_key()
    assert sign(MESSAGE, []) is None
    assert sign(MESSAGE, [ed25519_key("other.test")]) is None
    assert sign(MESSAGE.replace(b"From: Alice <alice@acme.test>\r\n", b""), [key]) is None
    # A subdomain is another domain: it needs its own entry.
    assert sign(MESSAGE.replace(b"@acme.test", b"@mail.acme.test"), [key]) is None
    assert sign(MESSAGE.replace(b"To: ", b"To "), [key]) is None
    signature = sign(MESSAGE, [ed25519_key("other.test"), key])
    assert signature is not None and signature.endswith(b"\r\n")
    tags = parse_tag_value(signature.removeprefix(b"DKIM-Signature:"))
    assert (tags[b"d"], tags[b"s"], tags[b"c"], tags[b"a"]) == (
        b"acme.test",
        b"s1",
        b"relaxed/relaxed",
        b"ed25519-sha256",
    )
    # The headers of the set present, in message order, then From once more.
    assert re.split(rb"\s*:\s*", tags[b"h"]) == [b"from", b"to", b"subject", b"from"]


def test_a_record_is_compared_key_by_key() -> None:
    key, other = ed25519_key(), ed25519_key()
    assert record_mismatch(key, key.record.encode()) is None
    assert record_mismatch(key, f"k=ed25519; p={key.public}".encode()) is None
    assert record_mismatch(key, other.record.encode()) == "the record publishes a different key"
    assert record_mismatch(key, b"v=DKIM1; k=ed25519; p=") == "the record revokes its key (empty p=)"
    assert "k=rsa" in (record_mismatch(key, f"v=DKIM1; p={key.public}".encode()) or "")
    assert "not a DKIM key record" in (record_mismatch(key, b"v=spf1 -all") or "")


@pytest.mark.parametrize(
    "message",
    [
        MESSAGE,
        MESSAGE + b"\r\n\r\n",
        b"From: a@acme.test\r\nSubject: x\r\n\r\n",
        b"From: a@acme.test\r\nSubject: folded\r\n  on\r\n\r\nbody\r\n\r\nmore \t \r\n",
        b"From: a@acme.test\nSubject: bare LF\n\nbody\n",
        b"From: a@acme.test\r\nSubject: one bare LF\r\n\r\nbody\nmore\r\n",
        b"\r\nno header\r\n",
        b"\r\nno header\r\n\r\nbut a blank line\r\n",
        b"From: a@acme.test\r\n",
    ],
)
def test_the_shortcut_parse_gives_what_dkimpy_parses(message: bytes) -> None:
    """The signer skips splitting a CRLF body into lines: the result must be dkimpy's own."""
    ours, theirs = _Signer(message), dkim.DKIM(message)
    assert (ours.headers, ours.body) == (theirs.headers, theirs.body)
