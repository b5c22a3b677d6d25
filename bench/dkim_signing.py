"""CPU per message of DKIM signing, by key type and message size.

The baseline is dkimpy's own signer with the same key and options (its RSA
step is pure Python); smarthost's signer does that step with OpenSSL. Rounds
alternate between the signers, and each figure is the best round's CPU time
(`time.process_time`) per message.
"""

import time
from collections.abc import Callable
from functools import partial

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from smarthost_common.dkim import SIGNED_HEADERS, key_from_bytes, sign

ROUNDS = 3
HEADER = (
    b"From: Alice <alice@acme.example>\r\nTo: bob@example.org\r\nSubject: figures\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <q4@acme.example>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
)


def message(size: int) -> bytes:
    return HEADER + (b"x" * 76 + b"\r\n") * (size // 78)


def cpu_ms(run: Callable[[], object], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        run()
    return (time.process_time() - started) / count * 1000


def pem(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def main() -> None:
    rsa_key = key_from_bytes("acme.example", "s1", pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    ed_key = key_from_bytes("acme.example", "s2", pem(ed25519.Ed25519PrivateKey.generate()))
    print(f"DKIM signing, CPU ms per message, best of {ROUNDS} alternating rounds")
    for size, count in ((2048, 200), (102400, 40)):
        data = message(size)
        headers = [name.encode() for name in SIGNED_HEADERS if name.encode() in data.lower()] + [b"from"]

        def dkimpy_rsa(data: bytes = data, headers: list[bytes] = headers) -> object:
            return dkim.sign(
                data,
                b"s1",
                b"acme.example",
                rsa_key.private,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=headers,
            )

        runs: dict[str, Callable[[], object]] = {
            "dkimpy alone, RSA-2048 (baseline)": dkimpy_rsa,
            "smarthost, RSA-2048": partial(sign, data, [rsa_key]),
            "smarthost, Ed25519": partial(sign, data, [ed_key]),
            "smarthost, RSA-2048 and Ed25519": partial(sign, data, [rsa_key, ed_key]),
        }
        rounds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(ROUNDS):
            for name, run in runs.items():
                rounds[name].append(cpu_ms(run, count))
        best = {name: min(figures) for name, figures in rounds.items()}
        base = best["dkimpy alone, RSA-2048 (baseline)"]
        print(f"  {size // 1024} KiB messages:")
        for name, figure in best.items():
            print(f"    {name:36} {figure:7.2f} ms   ratio {figure / base:5.2f}")


if __name__ == "__main__":
    main()
