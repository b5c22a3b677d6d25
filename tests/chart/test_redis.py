"""Redis keeps every accepted message: AOF on a volume, or an external Redis."""

from collections.abc import Callable

from support.chart import Rendered


def _config(rendered: Rendered) -> dict[str, str]:
    text = rendered.get("ConfigMap", "redis")["data"]["redis.conf"]
    lines = [line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in lines if key != "rename-command"}


def test_aof_on_a_persistent_volume(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("default")
    config = _config(rendered)
    assert (config["appendonly"], config["appendfsync"], config["dir"]) == ("yes", "everysec", "/data")
    assert config["maxmemory-policy"] == "noeviction"
    statefulset = rendered.get("StatefulSet", "redis")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_fsync_mode_is_configurable_and_restarts_redis(render: Callable[..., Rendered]) -> None:
    everysec = render({}).get("StatefulSet", "redis")["spec"]["template"]["metadata"]["annotations"]
    always = render({"redis": {"appendfsync": "always"}})
    assert _config(always)["appendfsync"] == "always"
    annotations = always.get("StatefulSet", "redis")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/config"] != everysec["checksum/config"]


def test_external_redis_replaces_the_statefulset(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("external-redis")
    assert not rendered.of_kind("StatefulSet")
    for component in ("ingress", "policy", "delivery"):
        env = Rendered.env_of(rendered.container(component))
        assert env["SMARTHOST_REDIS_URL"]["value"] == "rediss://:$(REDIS_PASSWORD)@redis.example.internal:6380/2"
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "smarthost-external-redis",
            "key": "password",
        }


def test_external_redis_url_from_a_secret(render: Callable[..., Rendered]) -> None:
    rendered = render({"redis": {"enabled": False, "external": {"existingSecret": "redis", "urlKey": "url"}}})
    env = Rendered.env_of(rendered.container("ingress"))
    assert env["SMARTHOST_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "url"}


def test_generated_password_is_kept_on_uninstall(render_case: Callable[[str], Rendered]) -> None:
    secret = render_case("default").get("Secret", "redis")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["data"]["password"]) > 0
