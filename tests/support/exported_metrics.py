"""The metric names the three services export, as Prometheus stores them, and the names PromQL uses."""

import importlib
import re

from prometheus_client import REGISTRY

# Importing a service's server module registers every metric it defines.
SERVICE_MODULES = ("smarthost_ingress.server", "smarthost_policy.server", "smarthost_delivery.server")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
METRIC = re.compile(r"\bsmarthost_[a-z0-9_]+")


def exported_metric_names() -> set[str]:
    """Series names (counters with `_total`, histograms' `_bucket/_sum/_count`) of smarthost's own metrics."""
    for module in SERVICE_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("smarthost_"):
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def metrics_in(expr: str) -> set[str]:
    """The smarthost metric names a PromQL expression reads."""
    return set(METRIC.findall(expr))
