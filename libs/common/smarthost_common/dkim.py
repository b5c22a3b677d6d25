"""DKIM signatures (RFC 6376, Ed25519 by RFC 8463) for the domains a customer owns.

Keys are read and checked once (`load_key`); signing then needs no file or
DNS access. A message is signed only when its From: header names exactly one
address and that address's domain is one of the customer's DKIM domains.
"""

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from functools import lru_cache
from pathlib import Path
from typing import Any

import dkim
import idna
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.util import InvalidTagValueList, parse_tag_value

# The headers signed when present; From once more, so none can be added after signing.
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "in-reply-to",
    "references",
)
# RFC 8301: signers must not use shorter RSA keys.
MIN_RSA_BITS = 1024
# A selector, kept to one DNS label.
SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
# One character-string of a TXT record holds at most this many bytes.
TXT_STRING_MAX = 255


class DkimKeyError(ValueError):
    """A DKIM key cannot be used; the message names the domain and the file."""


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    # `rsa` or `ed25519`, as the DNS record's `k=` tag names it.
    kind: str
    # The private key in the form dkimpy signs with: PEM for RSA, the base64 seed for Ed25519.
    private: bytes
    # The `p=` value the DNS record publishes.
    public: str
    # The RSA key as OpenSSL signs with it (see `_Signer`).
    rsa_key: rsa.RSAPrivateKey | None = field(default=None, compare=False, repr=False)

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> str:
        return f"v=DKIM1; k={self.kind}; p={self.public}"

    @property
    def record_strings(self) -> list[str]:
        """The record as the TXT character-strings DNS holds it (a 2048-bit RSA key needs two)."""
        return [self.record[i : i + TXT_STRING_MAX] for i in range(0, len(self.record), TXT_STRING_MAX)]


def load_key(domain: str, selector: str, path: Path) -> DkimKey:
    """Read a PEM private key (RSA, or Ed25519), or a bare base64 Ed25519 seed as dknewkey writes it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"DKIM key of {domain}: {path}: {exc.strerror or exc}") from None
    try:
        return key_from_bytes(domain, selector, data)
    except DkimKeyError as exc:
        raise DkimKeyError(f"DKIM key of {domain}: {path}: {exc}") from None


def key_from_bytes(domain: str, selector: str, data: bytes) -> DkimKey:
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise DkimKeyError(f"{domain!r} is not a domain name ({exc})") from None
    private = _parse_private(data)
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise DkimKeyError(f"an RSA key of {private.key_size} bits; DKIM needs at least {MIN_RSA_BITS}")
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKey(domain, selector, "rsa", pem, base64.b64encode(der).decode(), private)
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return DkimKey(domain, selector, "ed25519", base64.b64encode(seed), base64.b64encode(raw).decode())


def _parse_private(data: bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    if b"-----BEGIN" in data:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise DkimKeyError(f"not a usable PEM private key ({exc})") from None
        if not isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise DkimKeyError(f"a {type(private).__name__}; DKIM signs with RSA or Ed25519 keys")
        return private
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise DkimKeyError("neither a PEM private key nor a base64 Ed25519 seed")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def record_mismatch(key: DkimKey, record: bytes) -> str | None:
    """Why a published key record does not verify `key`'s signatures, or None when it does."""
    try:
        tags = parse_tag_value(record)
    except InvalidTagValueList as exc:
        return f"not a DKIM key record ({exc})"
    if tags.get(b"v", b"DKIM1") != b"DKIM1" or b"p" not in tags:
        return "not a DKIM key record (no v=DKIM1 or no p=)"
    if not tags[b"p"]:
        return "the record revokes its key (empty p=)"
    kind = tags.get(b"k", b"rsa").decode("ascii", "replace")
    if kind != key.kind:
        return f"the record is for k={kind} keys, the key file holds a k={key.kind} key"
    try:
        published, _, _, _ = dkim.evaluate_pk(key.record_name, record)
    except dkim.KeyFormatError as exc:
        return f"the record's key is unusable ({exc})"
    if key.kind == "rsa":
        ours = serialization.load_der_public_key(base64.b64decode(key.public))
        assert isinstance(ours, rsa.RSAPublicKey)
        numbers = ours.public_numbers()
        same = (published["modulus"], published["publicExponent"]) == (numbers.n, numbers.e)
    else:
        same = bytes(published) == base64.b64decode(key.public)
    return None if same else "the record publishes a different key"


def sign(message: bytes | bytearray, keys: Sequence[DkimKey]) -> bytes | None:
    """The `DKIM-Signature` header(s), CRLF-terminated, to put before the message; or None.

    None when the header cannot be parsed, when the From: header does not
    name exactly one address, or when that address's domain is not the
    domain of one of `keys`. A domain with several keys (RSA and Ed25519,
    as RFC 8463 advises) gets one signature each.
    """
    if not keys:
        return None
    try:
        signer = _Signer(message, linesep=b"\r\n")
    except dkim.MessageFormatError:
        # A header line that is no header field: no receiver could verify a signature over it.
        return None
    domain = from_domain([value for name, value in signer.headers if name.lower() == b"from"])
    matching = [key for key in keys if key.domain == domain]
    if not matching:
        return None
    present = [name.lower() for name, _ in signer.headers]
    signed = [name for name in present if name.decode("ascii", "replace") in SIGNED_HEADERS] + [b"from"]
    return b"".join(signer.sign_with(key, signed) for key in matching)


class _Signer(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's signer, with the RSA private-key operation done by OpenSSL.

    dkimpy computes it in pure Python: 7.4 ms of CPU to sign a 2 KiB message
    with a 2048-bit key, more than the whole relay spends on one; 0.8 ms this
    way (`bench/dkim_signing.py`). Canonicalization, the hashes and the
    header's form stay dkimpy's, and the tests verify the result with
    dkimpy's verifier.
    """

    openssl_key: rsa.RSAPrivateKey | None = None

    def set_message(self, message: bytes | bytearray) -> None:
        # dkimpy splits the whole message into lines and joins the body's again
        # with CRLF; with CRLF line ends only, the body is the bytes after the
        # first empty line already, and only the header needs parsing.
        end = message.find(b"\r\n\r\n")
        if end < 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
            super().set_message(message)
            return
        super().set_message(message[: end + 4])
        self.body = message[end + 4 :]

    def sign_with(self, key: DkimKey, headers: list[bytes]) -> bytes:
        self.openssl_key = key.rsa_key
        signature: bytes = self.sign(
            key.selector.encode(),
            key.domain.encode(),
            key.private,
            signature_algorithm=b"rsa-sha256" if key.kind == "rsa" else b"ed25519-sha256",
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
        return signature

    def gen_header(
        self, fields: list[tuple[bytes, bytes]], include_headers: Any, canon_policy: Any, header_name: bytes, pk: Any
    ) -> bytes:
        if self.openssl_key is None:  # Ed25519: dkimpy signs with PyNaCl, as fast
            header: bytes = super().gen_header(fields, include_headers, canon_policy, header_name, pk)
            return header
        # As dkimpy's gen_header: hash the signed headers and this header with an empty b=, then fill b= in.
        unsigned = dkim.fold(b"; ".join(b"=".join(tag) for tag in fields), namelen=len(header_name))
        hasher = self.hasher()
        canonical = canon_policy.canonicalize_headers(self.headers)
        this = (header_name, b" " + dkim.RE_BTAG.sub(b"\\1", unsigned))
        dkim.hash_headers(hasher, canon_policy, canonical, include_headers, this, dict(fields))
        signature = self.openssl_key.sign(hasher.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        signed = [(tag, base64.b64encode(signature) if tag == b"b" else value) for tag, value in fields]
        folded: bytes = dkim.fold(
            b"; ".join(b"=".join(tag) for tag in signed) + self.linesep, namelen=len(header_name), linesep=self.linesep
        )
        return folded


def from_domain(values: Sequence[bytes]) -> str | None:
    """The lower-case domain (A-labels for an IDN) of the one address the From: header values name, or None."""
    if len(values) != 1:
        return None
    return _domain_of(bytes(values[0]))


# The ingress asks this of every message, and a customer's From: values repeat: parsing and
# IDNA cost 80 us a message under load (6% of the ingress's CPU), a repeat 0.1 us.
@lru_cache(maxsize=1024)
def _domain_of(value: bytes) -> str | None:
    addresses = getaddresses([value.decode("utf-8", "replace").replace("\r\n", "")])
    if len(addresses) != 1:
        return None
    local, _, domain = addresses[0][1].rpartition("@")
    if not local or not domain:
        return None
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
