"""A customer's `dkim` entries and key files are checked when the policy service starts; a bad one names its setting."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from support.policy_grpc import PolicyProbe
from support.processes import ProcessGroup
from support.relay import BIN, Relay
from support.waiting import wait_until

CUSTOMER = "customers:\n  - name: acme\n    networks: [127.0.0.1/32]\n    dkim:\n"
# Relative key files are found beside the policy file.
GOOD = "      - {domain: acme.test, selector: rsa2026, keyFile: acme.pem}\n"


@pytest.fixture(autouse=True)
def key_files(tmp_path: Path) -> None:
    for name, private in (
        ("acme.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("acme-ed.pem", ed25519.Ed25519PrivateKey.generate()),
    ):
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (tmp_path / name).write_bytes(pem)
    (tmp_path / "not-a-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")


def test_a_customer_with_dkim_keys_is_served(policy_relay: Relay, tmp_path: Path) -> None:
    policy = tmp_path / "dkim-policy.yaml"
    ed25519_key = f"      - {{domain: acme.test, selector: ed2026, keyFile: {tmp_path / 'acme-ed.pem'}}}\n"
    policy.write_text(CUSTOMER + GOOD + ed25519_key)
    policy_relay.start_policy(SMARTHOST_POLICY_FILE=str(policy))


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("{domain: acme, selector: s1, keyFile: /k.pem}", "customers.0.dkim.1.domain"),
        ("{domain: 'acme..test', selector: s1, keyFile: /k.pem}", "customers.0.dkim.1.domain"),
        ("{domain: acme.test, selector: 's 1', keyFile: /k.pem}", "customers.0.dkim.1.selector"),
        ("{domain: acme.test, selector: s.1, keyFile: /k.pem}", "customers.0.dkim.1.selector"),
        ("{domain: acme.test, selector: s1}", "a policy file names keyFile"),
        ("{domain: acme.test, selector: s1, secretName: acme, secretKey: s1.pem}", "a policy file names keyFile"),
        ("{domain: acme.test, selector: s1, keyFile: /k.pem, key: x}", "customers.0.dkim.1.key"),
        ("{domain: ACME.test, selector: RSA2026, keyFile: /k.pem}", "rsa2026._domainkey.acme.test"),
        ("{domain: acme.test, selector: s1, keyFile: missing.pem}", "customers.0.dkim.1.keyFile"),
        ("{domain: acme.test, selector: s1, keyFile: not-a-key.pem}", "customers.0.dkim.1.keyFile"),
    ],
)
def test_a_bad_dkim_entry_stops_the_service_naming_it(
    policy_relay: Relay, processes: ProcessGroup, tmp_path: Path, entry: str, named: str
) -> None:
    policy = tmp_path / "dkim-policy.yaml"
    policy.write_text(CUSTOMER + GOOD + f"      - {entry}\n")
    env = {**policy_relay.env, "SMARTHOST_POLICY_FILE": str(policy)}
    process = processes.start("policy-misconfigured", [str(BIN / "smarthost-policy")], env)
    assert process.wait(30) != 0
    assert "configuration error: SMARTHOST_POLICY_FILE" in process.log()
    assert named in process.log()


def test_a_reload_with_a_bad_key_file_keeps_the_last_good_keys(
    policy_relay: Relay, processes: ProcessGroup, tmp_path: Path
) -> None:
    policy_file = tmp_path / "dkim-policy.yaml"
    policy_file.write_text(CUSTOMER + GOOD)
    policy = policy_relay.start_policy(SMARTHOST_POLICY_FILE=str(policy_file), SMARTHOST_POLICY_RELOAD_INTERVAL="0.2s")
    probe = PolicyProbe(policy.address)
    try:
        rsa_pem = (tmp_path / "acme.pem").read_bytes()
        assert probe.dkim_keys("127.0.0.1", "acme.test") == [("acme.test", "rsa2026", rsa_pem)]
        policy_file.write_text(CUSTOMER + GOOD + "      - {domain: acme.test, selector: s1, keyFile: missing.pem}\n")
        wait_until(lambda: "customers.0.dkim.1.keyFile" in policy.process.log(), what="the refusal logged")
        assert "policy file refused" in policy.process.log()
        assert probe.dkim_keys("127.0.0.1", "acme.test") == [("acme.test", "rsa2026", rsa_pem)]
    finally:
        probe.close()
