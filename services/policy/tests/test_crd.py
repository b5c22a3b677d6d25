"""The RelayCustomer CRD's schema and the policy file's customer entry are one schema."""

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from smarthost_policy.policy_file import FROM_RESOURCE, Customer, DkimKey, RateLimit, ReputationOverride, load_policy

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "helm" / "smarthost" / "crds" / "relaycustomers.yaml").read_text())
SPEC_SCHEMA: dict[str, Any] = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

FULL = {
    "name": "acme",
    "networks": ["203.0.113.0/24", "2001:db8:1::/48"],
    "maxMessageSize": 10485760,
    "rateLimit": {"messages": 1000, "per": "6h"},
    "requireMx": False,
    "maxRecipients": 50,
    "suspended": True,
    "reputation": {"window": "2h", "minMessages": 20, "maxBounceRate": 0.2},
    "dkim": [{"domain": "acme.example", "selector": "s2026", "secretName": "acme-dkim", "secretKey": "s2026.pem"}],
}


def aliases(model: type[Customer] | type[RateLimit] | type[DkimKey] | type[ReputationOverride]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_names_and_kind() -> None:
    assert CRD["metadata"]["name"] == "relaycustomers.smarthost.io"
    assert CRD["spec"]["group"] == "smarthost.io"
    assert CRD["spec"]["scope"] == "Namespaced"
    assert CRD["spec"]["names"]["kind"] == "RelayCustomer"
    assert CRD["spec"]["names"]["plural"] == "relaycustomers"
    assert [v["name"] for v in CRD["spec"]["versions"]] == ["v1alpha1"]


def test_same_fields_as_a_policy_file_customer() -> None:
    assert set(SPEC_SCHEMA["properties"]) == aliases(Customer)
    assert set(SPEC_SCHEMA["properties"]["rateLimit"]["properties"]) == aliases(RateLimit)
    assert set(SPEC_SCHEMA["properties"]["reputation"]["properties"]) == aliases(ReputationOverride)
    # A resource's keys come from Secrets; only a policy file names key files.
    assert set(SPEC_SCHEMA["properties"]["dkim"]["items"]["properties"]) == aliases(DkimKey) - {"keyFile"}
    assert set(SPEC_SCHEMA["required"]) == {f.alias for f in Customer.model_fields.values() if f.is_required()}


@pytest.mark.parametrize(
    "customer",
    [
        *(
            c.model_dump(mode="json", by_alias=True, exclude_none=True)
            for c in load_policy(ROOT / "examples" / "policy.yaml").customers
        ),
        FULL,
    ],
)
def test_sample_customers_are_valid_resources(customer: dict[str, Any]) -> None:
    jsonschema.validate(customer, SPEC_SCHEMA)
    Customer.model_validate(customer, context=FROM_RESOURCE)


@pytest.mark.parametrize(
    "change",
    [
        {"networks": []},
        {"networks": [], "users": []},
        {"users": [{"name": "u", "passwordHash": "plain"}]},
        {"networks": ["203.0.113.7"]},
        {"networks": ["acme.example"]},
        {"name": ""},
        {"maxMessageSize": 0},
        {"maxRecipients": -1},
        {"rateLimit": {"messages": 0, "per": "6h"}},
        {"rateLimit": {"messages": 10, "per": "6 hours"}},
        {"rateLimit": {"messages": 10}},
        {"requireMx": "yes"},
        {"suspended": "yes"},
        {"reputation": {"window": "an hour"}},
        {"reputation": {"minMessages": 0}},
        {"reputation": {"maxBounceRate": 1.5}},
        {"dkim": [{"domain": "acme.example", "selector": "s2026", "secretName": "acme-dkim"}]},
        {"dkim": [{"domain": "acme.example", "selector": "s.2026", "secretName": "k", "secretKey": "k"}]},
        {"dkim": [{"domain": "", "selector": "s2026", "secretName": "k", "secretKey": "k"}]},
    ],
)
def test_invalid_customers_are_refused_by_the_crd(change: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**FULL, **change}, SPEC_SCHEMA)


def test_a_resource_names_no_key_file() -> None:
    """A key file would be read from the policy pod's disk, which a resource's author must not choose."""
    spec = {**FULL, "dkim": [{"domain": "acme.example", "selector": "s2026", "keyFile": "/etc/passwd"}]}
    with pytest.raises(ValueError, match="a RelayCustomer names secretName and secretKey"):
        Customer.model_validate(spec, context=FROM_RESOURCE)
