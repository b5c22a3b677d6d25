"""Every pod is hardened, bounded and probed."""

from collections.abc import Callable

from support.chart import Obj, Rendered


def _containers(pod: Obj) -> list[Obj]:
    containers: list[Obj] = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
    return containers


def test_every_container_is_hardened(rendered: Rendered) -> None:
    for owner, pod in rendered.pod_templates():
        pod_context = pod["spec"].get("securityContext", {})
        for container in _containers(pod):
            where = f"{owner['metadata']['name']}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, where
            assert pod_context.get("runAsUser", 0) != 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where


def test_every_container_has_resources(rendered: Rendered) -> None:
    for owner, pod in rendered.pod_templates():
        for container in _containers(pod):
            resources = container.get("resources", {})
            where = f"{owner['metadata']['name']}/{container['name']}"
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where


def test_every_long_running_container_is_probed(rendered: Rendered) -> None:
    for owner, pod in rendered.pod_templates():
        if Rendered.is_hook(owner):
            continue
        for container in pod["spec"]["containers"]:
            where = f"{owner['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where


def test_policy_probes_speak_grpc_health(rendered: Rendered) -> None:
    container = rendered.container("policy")
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert container["readinessProbe"]["grpc"]["port"] == grpc_port
    assert container["livenessProbe"]["grpc"]["port"] == grpc_port


def test_http_probes_use_health_endpoints(rendered: Rendered) -> None:
    for component in ("ingress", "delivery"):
        container = rendered.container(component)
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_only_policy_gets_an_api_token(rendered: Rendered) -> None:
    for owner, pod in rendered.pod_templates():
        spec = pod["spec"]
        if owner["metadata"]["name"].endswith("-policy"):
            assert spec["serviceAccountName"] == owner["metadata"]["name"]
        else:
            assert spec["automountServiceAccountToken"] is False


def test_replicas_spread_over_zones_and_nodes(rendered: Rendered) -> None:
    for component in ("ingress", "policy", "delivery"):
        spec = rendered.get("Deployment", component)["spec"]
        keys = {c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in spec["template"]["spec"]["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_grace_periods_outlast_the_drain(rendered: Rendered) -> None:
    for component in ("ingress", "delivery"):
        spec = rendered.get("Deployment", component)["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > rendered.values[component]["drainTimeoutSeconds"]
    ingress = rendered.get("Deployment", "ingress")["spec"]["template"]["spec"]
    drain = rendered.values["ingress"]["drainTimeoutSeconds"]
    assert Rendered.env_of(ingress["containers"][0])["SMARTHOST_DRAIN_TIMEOUT"]["value"] == f"{drain}s"
    assert ingress["terminationGracePeriodSeconds"] > (
        rendered.values["ingress"]["drainTimeoutSeconds"] + rendered.values["ingress"]["preStopSleepSeconds"]
    )


def test_pod_disruption_budgets_only_for_several_replicas(render_case: Callable[[str], Rendered]) -> None:
    default = render_case("default")
    assert {p["metadata"]["name"] for p in default.of_kind("PodDisruptionBudget")} == {
        "relay-smarthost-ingress",
        "relay-smarthost-policy",
        "relay-smarthost-delivery",
    }
    # That case runs a single policy replica: a budget would block every node drain.
    fixed = render_case("networkpolicy")
    assert "relay-smarthost-policy" not in {p["metadata"]["name"] for p in fixed.of_kind("PodDisruptionBudget")}
    for budget in default.of_kind("PodDisruptionBudget"):
        component = budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        assert budget["spec"]["selector"] == default.get("Deployment", component)["spec"]["selector"]


def test_host_network_only_when_asked_keeping_cluster_dns(render_case: Callable[[str], Rendered]) -> None:
    for case, host_network in (("default", False), ("podman", True)):
        for component in ("ingress", "policy", "delivery"):
            spec = render_case(case).get("Deployment", component)["spec"]["template"]["spec"]
            assert spec.get("hostNetwork", False) is host_network
            # On the node's network the default policy would resolve with the node's DNS, not the cluster's.
            assert spec.get("dnsPolicy") == ("ClusterFirstWithHostNet" if host_network else None)
