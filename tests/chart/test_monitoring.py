"""The Grafana dashboard and the alerts: rendered behind their switches, querying only what the services export."""

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from support.chart import CHART, Obj, Rendered
from support.exported_metrics import exported_metric_names, metrics_in

EXPORTED = exported_metric_names()
ALERTS = {
    "SmarthostQueueMessageOld",
    "SmarthostDeferredQueueGrowing",
    "SmarthostBounceRatioHigh",
    "SmarthostPolicyUnreachable",
    "SmarthostRateLimitSpike",
    "SmarthostDeadLetters",
    "SmarthostQueueMemoryNearMark",
    "SmarthostQueueStorageFull",
    "SmarthostCustomerHeld",
    "SmarthostDkimSigningErrors",
}


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of every panel, those nested in rows included."""
    exprs: list[str] = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            exprs.extend(target["expr"] for target in inner.get("targets", []))
    return exprs


@pytest.fixture(scope="module")
def monitoring(render_case: Callable[[str], Rendered]) -> Rendered:
    return render_case("monitoring")


def test_the_exported_set_is_what_the_services_define() -> None:
    # A guard on the guard: the set holds each kind of series the checks below rely on.
    assert {
        "smarthost_ingress_replies_total",
        "smarthost_policy_decision_duration_seconds_bucket",
        "smarthost_delivery_latency_seconds_count",
        "smarthost_queue_messages",
        "smarthost_queue_oldest_message_age_seconds",
    } <= EXPORTED


def test_dashboard_loads_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads((CHART / "dashboards" / "smarthost.json").read_text())
    exprs = panel_exprs(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        used = metrics_in(expr)
        assert used, f"no smarthost metric in {expr!r}"
        assert used <= EXPORTED, f"{expr!r} reads {used - EXPORTED}, which no service exports"
    # Every worker exports the same queue gauges: summing them would multiply the queue.
    assert not [expr for expr in exprs if re.search(r"sum[^(]*\(smarthost_queue_(messages|oldest)", expr)]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_ships_as_a_configmap_grafana_picks_up(monitoring: Rendered) -> None:
    configmap = monitoring.get("ConfigMap", "dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Mail"}
    shipped = json.loads(configmap["data"]["smarthost.json"])
    assert shipped == json.loads((CHART / "dashboards" / "smarthost.json").read_text())


def test_nothing_for_grafana_or_alerts_by_default(render_case: Callable[[str], Rendered]) -> None:
    default = render_case("default")
    names = {obj["metadata"]["name"] for obj in default.of_kind("ConfigMap")}
    assert "relay-smarthost-dashboard" not in names
    assert not default.of_kind("PrometheusRule")
    policy = Rendered.env_of(default.container("policy"))
    assert "SMARTHOST_METRICS_CUSTOMER_LABEL" not in policy


def _rules(rendered: Rendered) -> list[Obj]:
    (rule,) = rendered.of_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    (group,) = rule["spec"]["groups"]
    rules: list[Obj] = group["rules"]
    return rules


def test_alerts_are_the_promised_ones_with_the_operator_s_thresholds(monitoring: Rendered) -> None:
    rules = _rules(monitoring)
    assert {rule["alert"] for rule in rules} == ALERTS
    by_name = {rule["alert"]: rule for rule in rules}
    assert by_name["SmarthostQueueMessageOld"]["expr"].endswith("> 7200")
    assert by_name["SmarthostDeadLetters"]["expr"] == 'max(smarthost_queue_messages{state="dead"}) > 0'
    assert "sum by (customer)" in by_name["SmarthostRateLimitSpike"]["expr"]
    assert by_name["SmarthostCustomerHeld"]["expr"] == "max(smarthost_customers_held) > 0"
    # 0.8 of the default queue.memoryMax (256 MiB).
    assert by_name["SmarthostQueueMemoryNearMark"]["expr"].endswith("> 214748364")
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"\d+m", rule["for"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["labels"]["team"] == "mail"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        # Prometheus's own templates reach it unexpanded by Helm.
        assert "{{ $value" in rule["annotations"]["description"]


def test_every_alert_expression_names_only_exported_metrics(monitoring: Rendered) -> None:
    for rule in _rules(monitoring):
        used = metrics_in(rule["expr"])
        assert used, rule["alert"]
        assert used <= EXPORTED, f"{rule['alert']} reads {used - EXPORTED}, which no service exports"


def test_customer_label_is_the_operator_s_choice(monitoring: Rendered) -> None:
    policy = Rendered.env_of(monitoring.container("policy"))
    assert policy["SMARTHOST_METRICS_CUSTOMER_LABEL"]["value"] == "true"
