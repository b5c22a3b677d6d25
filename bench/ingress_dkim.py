"""The ingress's CPU per message with DKIM signing on the message path, against the same load unsigned.

Three policy and ingress pairs run side by side on one Redis: the customer
without keys, with an RSA-2048 key and with an Ed25519 key for the From:
domain of every message. The rounds alternate between them (as
`ingress_throughput.py` measures one); the figures are the best and the
median round's ingress CPU per message; the counter proves what each pair
signed.
"""

import statistics
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from harness import loopback_world
from ingress_throughput import PER_SESSION, SESSIONS, SIZE, measure
from support.scrape import Scrape
from support.standard import UNLIMITED_POLICY

ROUNDS = 5
# body() writes From: alice@sender.test.
DOMAIN = "sender.test"


def key_file(folder: Path, name: str, private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> Path:
    path = folder / name
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smarthost-dkim-") as tmp, loopback_world() as world:
        folder = Path(tmp)
        keys = {
            "RSA-2048": key_file(folder, "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "Ed25519": key_file(folder, "ed25519.pem", ed25519.Ed25519PrivateKey.generate()),
        }
        pairs = {}
        for label, path in {"unsigned": None, **keys}.items():
            policy_file = folder / f"policy-{label}.yaml"
            dkim = f"    dkim: [{{domain: {DOMAIN}, selector: s1, keyFile: {path}}}]\n" if path else ""
            policy_file.write_text(UNLIMITED_POLICY + dkim)
            policy = world.relay.start_policy(SMARTHOST_POLICY_FILE=str(policy_file))
            pairs[label] = world.relay.start_ingress(policy)
        rounds: dict[str, list[float]] = {label: [] for label in pairs}
        for _ in range(ROUNDS):
            for label, ingress in pairs.items():
                _, _, (cpu,) = measure(ingress.port, [ingress.process.pid])
                rounds[label].append(cpu * 1000)
        signed = {
            label: Scrape(ingress.metrics_port).by("smarthost_ingress_dkim_signatures_total", "result")
            for label, ingress in pairs.items()
        }

    assert set(signed["unsigned"]) == {"unsigned"}, signed
    assert all(set(signed[label]) == {"signed"} for label in keys), signed
    best, median = min(rounds["unsigned"]), statistics.median(rounds["unsigned"])
    print(f"ingress CPU ms per message, {SESSIONS} sessions x {PER_SESSION} messages of {SIZE // 1024} KiB")
    print(f"{ROUNDS} alternating rounds: best, median (each + unsigned's), all rounds")
    for label, figures in rounds.items():
        every = ", ".join(f"{figure:.2f}" for figure in figures)
        low, middle = min(figures), statistics.median(figures)
        print(f"  {label:<10} {low:6.2f} (+{low - best:4.2f}) {middle:6.2f} (+{middle - median:4.2f})  [{every}]")


if __name__ == "__main__":
    main()
