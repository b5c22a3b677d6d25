"""The chart's own pods, rendered with ci/podman-values.yaml and played by `podman kube play`.

podman plays the Deployments and their ConfigMaps; the kinds it does not play
(Services, StatefulSet, NetworkPolicy, HPA, RBAC) and the `helm test` hook stay
checked by rendering (tests/chart). Redis, DNS and the destination MX are the
test's own processes on loopback, at ports it picks and hands to the chart.
"""

import copy
import smtplib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from support import kube_play, kube_probes, podman
from support.chart import CASES, CHART, NAMESPACE, RELEASE, Obj, Rendered, parse
from support.dns_server import DnsServer
from support.ports import free_port, wait_for_port
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.sinks import SmtpSink
from support.waiting import wait_until

pytestmark = pytest.mark.images

PLAYED_KINDS = ("Deployment", "ConfigMap")
# Seconds between SIGTERM and SIGKILL; the chart grants more, but idle pods drain at once.
STOP_GRACE = 60
BODY = b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: from the chart's pods\r\n\r\nHello Bob.\r\n"


def _merge(base: Obj, override: Obj) -> Obj:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged


def _render(values: Obj) -> list[Obj]:
    """What podman plays: the Deployments and ConfigMaps, no helm hooks."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = parse(manifests, values).objects
    return [obj for obj in objects if obj["kind"] in PLAYED_KINDS and not Rendered.is_hook(obj)]


def _playable(objects: list[Obj]) -> list[Obj]:
    """podman 4.3 publishes every containerPort, which a host-network pod refuses: drop them.

    On a cluster they only document the ports, which a host-network pod opens on the node anyway.
    """
    played = copy.deepcopy(objects)
    for obj in played:
        if obj["kind"] == "Deployment":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container.pop("ports", None)
    return played


@pytest.fixture
def manifest(tmp_path: Path) -> Iterator[Path]:
    """Where the test writes what podman plays; whatever was played is taken down at teardown."""
    path = tmp_path / "chart-pods.yaml"
    yield path
    if path.exists():
        kube_play.remove(path)


def test_chart_pods_relay_and_drain(
    processes: ProcessGroup,
    manifest: Path,
    redis_server: RedisServer,
    dns_server: DnsServer,
    mx_port: int,
    sinks: Callable[..., SmtpSink],
) -> None:
    destination = sinks("example.test")
    smtp, grpc_port = free_port("0.0.0.0"), free_port("0.0.0.0")
    values = _merge(
        CASES["podman"],
        {
            "dnsServers": dns_server.address,
            "ingress": {
                "smtpPort": smtp,
                "metricsPort": free_port("0.0.0.0"),
                "policyAddress": f"127.0.0.1:{grpc_port}",
            },
            "policy": {"grpcPort": grpc_port, "metricsPort": free_port("0.0.0.0")},
            "delivery": {"metricsPort": free_port("0.0.0.0"), "port": mx_port},
            "redis": {"external": {"port": redis_server.port}},
        },
    )
    objects = _render(values)
    deployments = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Deployment"}
    assert len(deployments) == 3
    manifest.write_text(yaml.safe_dump_all(_playable(objects)))

    kube_play.play(manifest)
    logs = {}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (played,) = kube_play.containers_of(name)
        logs[played] = podman.follow_logs(processes, played)
        for probe in kube_probes.probes(container):
            wait_until(partial(kube_probes.passes, container, probe), timeout=60, what=f"{played}'s probe {probe}")
    wait_for_port("127.0.0.1", smtp)

    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], BODY)
    wait_until(lambda: len(destination.messages) == 1, timeout=30, what="delivery through the chart's pods")
    assert destination.messages[0].data.endswith(BODY)

    events = podman.watch_exits(processes)
    kube_play.down(manifest, grace=STOP_GRACE)
    wait_until(lambda: set(podman.exit_codes(events)) >= set(logs), timeout=30, what="every container's exit")
    assert {name: podman.exit_codes(events)[name] for name in logs} == dict.fromkeys(logs, 0)
    for name, output in logs.items():
        output.wait(10)
        assert " stopped" in output.log(), f"{name} did not drain:\n{output.log()}"
