"""values.schema.json stops bad values when the chart renders, naming the value."""

from collections.abc import Callable

import helm_python as helm
import pytest
from support.chart import Obj, Rendered

BAD_VALUES: dict[str, tuple[Obj, str]] = {
    "negative rate limit": (
        {"policyFile": {"defaults": {"rateLimit": {"messages": -1, "per": "6h"}}}},
        "/policyFile/defaults/rateLimit/messages",
    ),
    "customer without networks": (
        {"policyFile": {"customers": [{"name": "acme", "networks": []}]}},
        "/policyFile/customers/0/networks",
    ),
    "duration without unit": (
        {
            "policyFile": {
                "customers": [{"name": "a", "networks": ["192.0.2.0/24"], "rateLimit": {"messages": 5, "per": "6"}}]
            }
        },
        "/policyFile/customers/0/rateLimit/per",
    ),
    "misspelt key": ({"ingress": {"replicas": 3}}, "replicas"),
    "unknown fsync mode": ({"redis": {"appendfsync": "sometimes"}}, "/redis/appendfsync"),
    "proxy protocol trusting no one": ({"ingress": {"proxyProtocol": {"enabled": True}}}, "trustedNetworks"),
    "tls without a secret": ({"ingress": {"tls": {"enabled": True}}}, "secretName"),
    "external redis without an address": ({"redis": {"enabled": False}}, "/redis"),
    "zero delivery workers": ({"delivery": {"autoscaling": {"minReplicas": 0}}}, "minReplicas"),
    "client IPs dropped by typo": (
        {"ingress": {"service": {"externalTrafficPolicy": "local"}}},
        "externalTrafficPolicy",
    ),
}


@pytest.mark.parametrize("values, where", BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_bad_values_refused_at_render(render: Callable[[Obj], Rendered], values: Obj, where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=where):
        render(values)


def test_every_ci_case_passes_the_schema(rendered: Rendered) -> None:
    assert rendered.objects
