"""A customer's `dkim` entries are checked when the policy service starts; a bad one names its setting."""

from pathlib import Path

import pytest
from support.processes import ProcessGroup
from support.relay import BIN, Relay

CUSTOMER = "customers:\n  - name: acme\n    networks: [127.0.0.1/32]\n    dkim:\n"
GOOD = "      - {domain: acme.test, selector: rsa2026, keyFile: /etc/smarthost/dkim/acme.pem}\n"


def test_a_customer_with_dkim_keys_is_served(policy_relay: Relay, tmp_path: Path) -> None:
    policy = tmp_path / "dkim-policy.yaml"
    ed25519 = "      - {domain: acme.test, selector: ed2026, keyFile: /etc/smarthost/dkim/acme-ed.pem}\n"
    policy.write_text(CUSTOMER + GOOD + ed25519)
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
