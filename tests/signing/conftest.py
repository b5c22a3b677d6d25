"""DKIM tests: keys of acme.test, their records served by the test DNS server."""

from collections.abc import Callable
from pathlib import Path

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from support.dns_server import DnsServer, txt
from support.standard import STANDARD_ZONE

from smarthost_common.dkim import DkimKey, load_key


def write_key(path: Path, private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> Path:
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.fixture
def rsa_key(tmp_path: Path) -> DkimKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return load_key("acme.test", "rsa2026", write_key(tmp_path / "rsa.pem", private))


@pytest.fixture
def ed25519_key(tmp_path: Path) -> DkimKey:
    return load_key("acme.test", "ed2026", write_key(tmp_path / "ed25519.pem", ed25519.Ed25519PrivateKey.generate()))


@pytest.fixture
def dns_zone(rsa_key: DkimKey, ed25519_key: DkimKey) -> list[str]:
    return [*STANDARD_ZONE, *(txt(key.record_name, key.record_strings) for key in (rsa_key, ed25519_key))]


@pytest.fixture
def verify(dns_server: DnsServer) -> Callable[[bytes, int], bool]:
    """dkimpy's verification of a message's `index`th signature, the key looked up in the test DNS."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)

    def check(message: bytes, index: int = 0) -> bool:
        try:
            return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=lookup))
        except dkim.DKIMException:
            # What a receiver counts as a failed signature, as `dkim.verify` does.
            return False

    return check
