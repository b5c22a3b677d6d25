"""The policy ConfigMap holds a policy file both the CRD and the service accept."""

from collections.abc import Callable
from typing import Any

import jsonschema
import yaml
from support.chart import CHART, Obj, Rendered

from smarthost_policy.policy_file import PolicyFile


def _crd_spec_schema() -> Obj:
    crd = yaml.safe_load((CHART / "crds" / "relaycustomers.yaml").read_text())
    assert (crd["spec"]["group"], crd["spec"]["names"]["kind"], crd["spec"]["scope"]) == (
        "smarthost.io",
        "RelayCustomer",
        "Namespaced",
    )
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    spec: Obj = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def _policy(rendered: Rendered) -> Any:
    configmap = rendered.get("ConfigMap", "policy")
    return yaml.safe_load(configmap["data"]["policy.yaml"])


def test_customers_validate_against_the_crd(rendered: Rendered) -> None:
    """But for the DKIM keys' source: a file names key files, a resource Secrets."""
    schema = _crd_spec_schema()
    for customer in _policy(rendered)["customers"]:
        jsonschema.validate({key: value for key, value in customer.items() if key != "dkim"}, schema)


def test_defaults_validate_against_the_crd(rendered: Rendered) -> None:
    """The defaults are a customer without name, networks or users."""
    schema = _crd_spec_schema()
    limits = {key: value for key, value in schema.items() if key not in ("required", "anyOf")}
    jsonschema.validate(_policy(rendered)["defaults"], limits)


def test_policy_service_loads_it(rendered: Rendered) -> None:
    policy = PolicyFile.model_validate(_policy(rendered))
    assert len(policy.customers) == len(rendered.values["policyFile"]["customers"])


def test_customers_from_values_reach_the_file(render_case: Callable[[str], Rendered]) -> None:
    policy = PolicyFile.model_validate(_policy(render_case("networkpolicy")))
    acme = next(customer for customer in policy.customers if customer.name == "acme")
    assert acme.limits(policy.defaults).rate_limit.messages == 1000


def test_policy_updates_without_restart(rendered: Rendered) -> None:
    """Mounted as a whole volume (kubelet refreshes it); no checksum forces a rollout."""
    deployment = rendered.get("Deployment", "policy")
    pod = deployment["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "policy")
    assert volume["configMap"]["name"] == rendered.get("ConfigMap", "policy")["metadata"]["name"]
    (container,) = pod["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "policy")
    assert "subPath" not in mount
    assert Rendered.env_of(container)["SMARTHOST_POLICY_FILE"]["value"] == f"{mount['mountPath']}/policy.yaml"
    assert "checksum/config" not in (pod["metadata"].get("annotations") or {})


def test_policy_may_watch_relay_customers(rendered: Rendered) -> None:
    role = rendered.get("Role", "policy")
    binding = rendered.get("RoleBinding", "policy")
    account = rendered.get("ServiceAccount", "policy")
    # Secrets only to read RelayCustomers' DKIM keys; a policy file's keys are mounted.
    secrets = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    assert role["rules"] == [
        {"apiGroups": ["smarthost.io"], "resources": ["relaycustomers"], "verbs": ["get", "list", "watch"]},
        *(secrets if rendered.values["policy"]["source"] == "kubernetes" else []),
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "mail"}]


def test_dkim_keys_are_mounted_from_one_secret(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("dkim")
    pod = rendered.get("Deployment", "policy")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "dkim")
    assert volume["secret"] == {"secretName": "smarthost-dkim", "defaultMode": 0o440}
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "dkim")
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/smarthost/dkim", True)
    (acme,) = PolicyFile.model_validate(_policy(rendered)).customers
    assert {str(key.key_file.parent) for key in acme.dkim if key.key_file} == {mount["mountPath"]}


def test_no_dkim_secret_no_mount(rendered: Rendered) -> None:
    if rendered.values["policy"]["dkimSecret"]:
        return
    pod = rendered.get("Deployment", "policy")["spec"]["template"]["spec"]
    assert "dkim" not in {v["name"] for v in pod["volumes"]}
