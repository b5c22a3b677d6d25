"""The breaker's settings in the policy file: defaults, per-customer overrides, `suspended`, validation."""

import pytest

from smarthost_policy.breaker import BreakerSettings
from smarthost_policy.customers import CustomerIndex
from smarthost_policy.policy_file import PolicyFile, parse_policy


def test_defaults_when_the_file_says_nothing() -> None:
    policy = parse_policy(b"customers:\n  - name: acme\n    networks: [192.0.2.0/24]\n", "policy.yaml")
    match = CustomerIndex(policy).lookup("192.0.2.1")
    assert match is not None and not match.suspended
    assert match.limits.reputation.text == "3600 50 0.1 1h"


def test_a_customer_overrides_only_what_it_names() -> None:
    policy = parse_policy(
        b"""
defaults:
  reputation: {window: 2h, minMessages: 100, maxBounceRate: 0.05}
customers:
  - name: acme
    networks: [192.0.2.0/24]
    reputation: {maxBounceRate: 0.2}
  - name: bravo
    networks: [198.51.100.0/24]
    suspended: true
""",
        "policy.yaml",
    )
    index = CustomerIndex(policy)
    acme, bravo = index.lookup("192.0.2.1"), index.lookup("198.51.100.1")
    assert acme is not None and bravo is not None
    assert acme.limits.reputation.text == "7200 100 0.2 2h"
    assert bravo.limits.reputation.text == "7200 100 0.05 2h"
    assert (acme.suspended, bravo.suspended) == (False, True)
    assert BreakerSettings.of(policy) == BreakerSettings(
        {"acme": "7200 100 0.2 2h", "bravo": "7200 100 0.05 2h"}, frozenset({"bravo"})
    )


@pytest.mark.parametrize(
    ("reputation", "named"),
    [
        ("{window: 0s}", "defaults.reputation.window"),
        ("{window: soon}", "defaults.reputation.window"),
        ("{minMessages: 0}", "defaults.reputation.minMessages"),
        ("{maxBounceRate: 0}", "defaults.reputation.maxBounceRate"),
        ("{maxBounceRate: 1.5}", "defaults.reputation.maxBounceRate"),
        ("{maxBounceRate: 0.1, minMesages: 5}", "defaults.reputation.minMesages"),
    ],
)
def test_bad_settings_are_refused_naming_them(reputation: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        parse_policy(f"defaults:\n  reputation: {reputation}\n".encode(), "policy.yaml")


def test_a_bad_customer_override_is_refused_naming_it() -> None:
    content = b"customers:\n  - name: acme\n    networks: [192.0.2.0/24]\n    reputation: {maxBounceRate: 2}\n"
    with pytest.raises(ValueError, match=r"customers\.0\.reputation\.maxBounceRate"):
        parse_policy(content, "policy.yaml")


def test_every_rate_up_to_one_is_valid() -> None:
    policy = PolicyFile.model_validate({"defaults": {"reputation": {"maxBounceRate": 1}}})
    assert policy.defaults.reputation.max_bounce_rate == 1
