from pathlib import Path

import pytest

from smarthost_policy.customers import CustomerIndex
from smarthost_policy.policy_file import PolicyFile, load_policy

POLICY = PolicyFile.model_validate(
    {
        "defaults": {"rateLimit": {"messages": 160, "per": "6h"}},
        "customers": [
            {"name": "acme", "networks": ["203.0.113.0/24", "2001:db8:1::/48"]},
            {"name": "acme-mail", "networks": ["203.0.113.25/32"], "rateLimit": {"messages": 1000, "per": "6h"}},
        ],
    }
)


@pytest.mark.parametrize(
    ("ip", "customer"),
    [
        ("203.0.113.7", "acme"),
        ("203.0.113.25", "acme-mail"),
        ("::ffff:203.0.113.7", "acme"),
        ("2001:db8:1:ffff::1", "acme"),
        ("203.0.114.1", None),
        ("2001:db8:2::1", None),
        ("not an address", None),
    ],
)
def test_client_ip_to_customer(ip: str, customer: str | None) -> None:
    match = CustomerIndex(POLICY).lookup(ip)
    assert (match.customer if match else None) == customer


def test_overrides_replace_only_what_they_name() -> None:
    index = CustomerIndex(POLICY)
    special = index.lookup("203.0.113.25")
    plain = index.lookup("203.0.113.1")
    assert special and plain
    assert special.limits.rate_limit.messages == 1000
    assert plain.limits.rate_limit.messages == 160
    assert special.limits.rate_limit.per == plain.limits.rate_limit.per == 21600
    assert special.limits.max_message_size == 20971520


def test_policy_file_typos_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("defaults:\n  maxMessageSise: 10\n")
    with pytest.raises(ValueError, match="maxMessageSise"):
        load_policy(path)


def test_sample_policy_loads() -> None:
    sample = Path(__file__).resolve().parents[3] / "examples" / "policy.yaml"
    assert load_policy(sample).customers[0].name == "local"
