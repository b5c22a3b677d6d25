"""The chart lints strictly and every object it renders is valid Kubernetes."""

from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from support.chart import CASES, CHART, Rendered

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas shipped.
KUBE_VERSIONS = ["1.29", kubernetes_validate.utils.latest_version()]
# Operators' custom resources, rendered only behind their switches; no schemas ship for them.
OPTIONAL_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): ("delivery", "autoscaling", "keda", "enabled"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("metrics", "serviceMonitor", "enabled"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("metrics", "prometheusRule", "enabled"),
    ("cert-manager.io/v1", "Certificate"): ("ingress", "tls", "certManager", "enabled"),
}


def _lookup(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


@pytest.mark.parametrize("case", list(CASES))
def test_lint_strict_passes(case: str) -> None:
    report = helm.lint(CHART, CASES[case], strict=True, kube_version="v1.29.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_objects_validate_against_kubernetes_schemas(rendered: Rendered, version: str) -> None:
    for obj in rendered.objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in OPTIONAL_KINDS:
            assert _lookup(rendered.values, OPTIONAL_KINDS[key]), f"{key} rendered while switched off"
            continue
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_crd_validates(version: str) -> None:
    for path in (CHART / "crds").glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(crd, version, strict=True)


def test_defaults_need_no_operator_installed(render_case: Any) -> None:
    """A bare cluster (no KEDA, Prometheus Operator or cert-manager) takes the defaults."""
    kinds = {(obj["apiVersion"], obj["kind"]) for obj in render_case("default").objects}
    assert not kinds & set(OPTIONAL_KINDS)


def test_names_are_unique(rendered: Rendered) -> None:
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects]
    assert len(keys) == len(set(keys))
