"""The chart configures what the services read, in a form they accept.

Compared with the services' own settings classes, imported: a setting added
to a service without a default fails here until the chart provides it.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings
from support.chart import Obj, Rendered

from smarthost_common.settings import PREFIX
from smarthost_delivery.config import DeliverySettings
from smarthost_ingress.config import IngressSettings
from smarthost_policy.config import PolicySettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "ingress": IngressSettings,
    "policy": PolicySettings,
    "delivery": DeliverySettings,
}
# What the kubelet would put where the chart refers to a Secret.
SECRET_VALUES = {
    "REDIS_PASSWORD": "s3cret",
    "SMARTHOST_REDIS_URL": "rediss://:s3cret@redis.example.internal:6380/2",
    "SMARTHOST_SPOOL_URL": "postgresql://app:s3cret@mail-spool-rw.mail.svc:5432/app",
}


def _variables(cls: type[BaseSettings]) -> dict[str, bool]:
    """Each variable the class reads, and whether the service needs it set."""
    return {PREFIX + name.upper(): field.is_required() for name, field in cls.model_fields.items()}


def _environment(container: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it, $(VAR) references expanded."""
    environment: dict[str, str] = {}
    for name, entry in Rendered.env_of(container).items():
        value = entry["value"] if "value" in entry else SECRET_VALUES[name]
        for known, known_value in environment.items():
            value = value.replace(f"$({known})", known_value)
        environment[name] = value
    return environment


@pytest.mark.parametrize("component", SETTINGS)
def test_every_required_setting_is_set(rendered: Rendered, component: str) -> None:
    environment = _environment(rendered.container(component))
    missing = [name for name, required in _variables(SETTINGS[component]).items() if required]
    assert not [name for name in missing if name not in environment]


@pytest.mark.parametrize("component", SETTINGS)
def test_chart_sets_only_known_settings(rendered: Rendered, component: str) -> None:
    known = set(_variables(SETTINGS[component]))
    chart = {name for name in _environment(rendered.container(component)) if name.startswith(PREFIX)}
    assert chart <= known, chart - known


@pytest.mark.parametrize("component", SETTINGS)
def test_services_accept_the_chart_values(
    rendered: Rendered, component: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The settings class, fed the rendered environment, starts without a configuration error."""
    for name in _variables(SETTINGS[component]):
        monkeypatch.delenv(name, raising=False)
    for name, value in _environment(rendered.container(component)).items():
        monkeypatch.setenv(name, _mounted(rendered.container(component), value, tmp_path))
    SETTINGS[component]()


def _mounted(container: Obj, value: str, tmp_path: Path) -> str:
    """A path inside one of the container's volume mounts, as a real file here."""
    mounts = [mount["mountPath"] for mount in container.get("volumeMounts", [])]
    if not value.startswith("/") or not any(value.startswith(mount + "/") for mount in mounts):
        return value
    local = tmp_path / value.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text("mounted from a Secret or ConfigMap\n")
    return str(local)


def test_ingress_finds_policy_through_the_headless_service(rendered: Rendered) -> None:
    env = Rendered.env_of(rendered.container("ingress"))
    service = rendered.get("Service", "policy")
    assert service["spec"]["clusterIP"] == "None"
    name = service["metadata"]["name"]
    port = service["spec"]["ports"][0]["port"]
    # An explicit address replaces it where cluster DNS cannot resolve the Service.
    address = rendered.values["ingress"]["policyAddress"] or f"dns:///{name}.mail.svc.cluster.local:{port}"
    assert env["SMARTHOST_POLICY_ADDR"]["value"] == address


def test_redis_password_stays_in_its_secret(rendered: Rendered) -> None:
    for component in SETTINGS:
        env = Rendered.env_of(rendered.container(component))
        url = env["SMARTHOST_REDIS_URL"]
        assert "valueFrom" in url or "$(REDIS_PASSWORD)" in url["value"] or not rendered.values["redis"]["enabled"]
        if "REDIS_PASSWORD" in env:
            assert "secretKeyRef" in env["REDIS_PASSWORD"]["valueFrom"]


def test_delivery_accepts_comma_separated_lists(
    render: Callable[[Obj], Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render({"delivery": {"retrySchedule": "5m,10m,1h", "allowNetworks": ["10.0.0.0/8", "fd00::/8"]}})
    for name, value in _environment(rendered.container("delivery")).items():
        monkeypatch.setenv(name, value)
    settings = DeliverySettings()
    assert settings.retry_schedule == [300, 600, 3600]
