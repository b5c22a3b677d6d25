"""A container's probes carried out as the kubelet would, on the host's network.

podman turns only liveness probes into health checks, runs them inside the
container (with curl, which the images do not have) and needs systemd to
schedule them; the tests therefore probe from outside, like a kubelet.
"""

import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.chart import Obj


def _port(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == port))


def passes(container: Obj, probe: Obj) -> bool:
    try:
        if "httpGet" in probe:
            port = _port(container, probe["httpGet"]["port"])
            url = f"http://127.0.0.1:{port}{probe['httpGet']['path']}"
            with urllib.request.urlopen(url, timeout=2) as response:
                status: int = response.status
                return 200 <= status < 400
        if "grpc" in probe:
            with grpc.insecure_channel(f"127.0.0.1:{_port(container, probe['grpc']['port'])}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except (OSError, grpc.RpcError):
        return False
    raise AssertionError(f"a probe the tests cannot carry out: {probe}")


def probes(container: Obj) -> list[Obj]:
    return [container[kind] for kind in ("readinessProbe", "livenessProbe", "startupProbe") if kind in container]
