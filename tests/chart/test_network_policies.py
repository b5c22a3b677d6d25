"""NetworkPolicies select the pods they are meant for and let only the right peers in."""

from collections.abc import Callable

import pytest
from support.chart import Obj, Rendered

COMPONENTS = ("ingress", "policy", "delivery", "redis")


@pytest.fixture
def policies(render_case: Callable[[str], Rendered]) -> Rendered:
    return render_case("networkpolicy")


def _pod_labels(rendered: Rendered) -> dict[str, dict[str, str]]:
    labels = {}
    for component in COMPONENTS:
        kind = "StatefulSet" if component == "redis" else "Deployment"
        labels[component] = rendered.get(kind, component)["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def _selected(selector: Obj, rendered: Rendered) -> set[str]:
    return {name for name, labels in _pod_labels(rendered).items() if _selects(selector, labels)}


def _peers(rule: Obj, rendered: Rendered) -> set[str]:
    peers: list[Obj] = rule.get("from") or rule.get("to") or []
    return set().union(*(_selected(peer["podSelector"], rendered) for peer in peers))


def test_each_policy_selects_its_own_pods(policies: Rendered) -> None:
    for component in COMPONENTS:
        policy = policies.get("NetworkPolicy", component)
        assert _selected(policy["spec"]["podSelector"], policies) == {component}
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_only_ingress_reaches_policy(policies: Rendered) -> None:
    rules = policies.get("NetworkPolicy", "policy")["spec"]["ingress"]
    grpc = next(rule for rule in rules if rule["ports"][0]["port"] == 50051)
    assert _peers(grpc, policies) == {"ingress"}


def test_only_the_services_reach_redis(policies: Rendered) -> None:
    (rule,) = policies.get("NetworkPolicy", "redis")["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert _peers(rule, policies) == {"ingress", "policy", "delivery"}
    assert "egress" not in policies.get("NetworkPolicy", "redis")["spec"]


def test_delivery_sends_mail_on_port_25_only(policies: Rendered) -> None:
    egress = policies.get("NetworkPolicy", "delivery")["spec"]["egress"]
    open_rules = [rule for rule in egress if "to" not in rule]
    ports = {(port["port"], port["protocol"]) for rule in open_rules for port in rule["ports"]}
    assert ports == {(25, "TCP"), (53, "UDP"), (53, "TCP")}
    redis = next(rule for rule in egress if "to" in rule)
    assert _peers(redis, policies) == {"redis"}


def test_ingress_talks_to_policy_and_redis(policies: Rendered) -> None:
    egress = policies.get("NetworkPolicy", "ingress")["spec"]["egress"]
    targets = {port["port"]: _peers(rule, policies) for rule in egress if "to" in rule for port in rule["ports"]}
    assert targets == {50051: {"policy"}, 6379: {"redis"}}


def test_metrics_only_from_monitoring(policies: Rendered) -> None:
    for component, port in (("ingress", 9100), ("policy", 9101), ("delivery", 9102)):
        rules = policies.get("NetworkPolicy", component)["spec"]["ingress"]
        metrics = next(rule for rule in rules if rule["ports"][0]["port"] == port)
        assert metrics["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]


def test_external_redis_egress_leaves_the_cluster(render: Callable[..., Rendered]) -> None:
    rendered = render(
        {"networkPolicy": {"enabled": True}, "redis": {"enabled": False, "external": {"host": "redis.example"}}}
    )
    assert not [obj for obj in rendered.of_kind("NetworkPolicy") if obj["metadata"]["name"].endswith("-redis")]
    egress = rendered.get("NetworkPolicy", "delivery")["spec"]["egress"]
    assert {"ports": [{"port": 6379, "protocol": "TCP"}]} in egress


def test_with_a_spool_ingress_and_delivery_reach_postgresql(render_case: Callable[[str], Rendered]) -> None:
    spooled = render_case("spool")
    for component in COMPONENTS:
        ports = {
            port["port"]
            for rule in spooled.get("NetworkPolicy", component)["spec"].get("egress", [])
            for port in rule["ports"]
        }
        assert (5432 in ports) == (component in ("ingress", "delivery")), (component, ports)
