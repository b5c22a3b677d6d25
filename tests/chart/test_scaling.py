"""Delivery scales on queue lag with KEDA, else on CPU; ingress and policy on CPU."""

from collections.abc import Callable

from support.chart import Rendered


def test_keda_scales_delivery_on_consumer_group_lag(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("keda")
    (scaled,) = rendered.of_kind("ScaledObject")
    deployment = rendered.get("Deployment", "delivery")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    metadata = trigger["metadata"]
    assert (metadata["stream"], metadata["consumerGroup"], metadata["lagCount"]) == (
        "smarthost:queue:ready",
        "delivery",
        "25",
    )
    assert metadata["host"] == "relay-smarthost-redis.mail.svc.cluster.local"
    assert metadata["passwordFromEnv"] in Rendered.env_of(rendered.container("delivery"))
    # KEDA owns the HPA: a second one would fight it.
    assert "relay-smarthost-delivery" not in {
        hpa["metadata"]["name"] for hpa in rendered.of_kind("HorizontalPodAutoscaler")
    }
    assert "replicas" not in deployment["spec"]


def test_keda_reaches_an_external_redis(render_case: Callable[[str], Rendered]) -> None:
    (scaled,) = render_case("external-redis").of_kind("ScaledObject")
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    assert (metadata["host"], metadata["port"], metadata["enableTLS"], metadata["databaseIndex"]) == (
        "redis.example.internal",
        "6380",
        "true",
        "2",
    )


def test_without_keda_delivery_scales_on_cpu(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("default")
    assert not rendered.of_kind("ScaledObject")
    hpa = rendered.get("HorizontalPodAutoscaler", "delivery")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "relay-smarthost-delivery",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_ingress_and_policy_autoscale(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("default")
    for component in ("ingress", "policy"):
        hpa = rendered.get("HorizontalPodAutoscaler", component)
        assert hpa["spec"]["scaleTargetRef"]["name"] == rendered.get("Deployment", component)["metadata"]["name"]
        assert "replicas" not in rendered.get("Deployment", component)["spec"]


def test_fixed_replicas_without_autoscaling(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("networkpolicy")
    assert not rendered.of_kind("HorizontalPodAutoscaler")
    assert rendered.get("Deployment", "ingress")["spec"]["replicas"] == 3
