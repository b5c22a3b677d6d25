"""The three images, run by podman as containers, relay a message and refuse an outsider.

Redis, DNS (dnsmasq) and the destination MX (an SMTP sink) are the tests' own
processes on loopback; the containers share the host's network.
"""

import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from support import podman
from support.dns_server import DnsServer
from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup
from support.redis_server import RedisServer
from support.relay import wait_ready
from support.sinks import SmtpSink
from support.standard import DEFAULT_POLICY
from support.waiting import wait_until

pytestmark = pytest.mark.images

BODY = b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: from the images\r\n\r\nHello Bob.\r\n"
# Generous: the containers drain at once when idle; a SIGKILL would show as exit 137.
STOP_TIMEOUT = 30


def test_images_relay_refuse_and_drain(
    processes: ProcessGroup,
    containers: list[str],
    tmp_path: Path,
    redis_server: RedisServer,
    dns_server: DnsServer,
    mx_port: int,
    sinks: Callable[..., SmtpSink],
) -> None:
    destination = sinks("example.test")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(DEFAULT_POLICY)
    common = {"SMARTHOST_REDIS_URL": redis_server.url, "SMARTHOST_HOSTNAME": "relay.test"}
    grpc, smtp = free_port(), free_port("0.0.0.0")
    metrics = {service: free_port() for service in ("policy", "ingress-smtp", "delivery")}
    started: dict[str, Process] = {}

    def start(service: str, env: dict[str, str], volumes: tuple[str, ...] = ()) -> None:
        name = f"smarthost-test-{service}-{metrics[service]}"
        containers.append(name)
        listen = {"SMARTHOST_METRICS_LISTEN": f"127.0.0.1:{metrics[service]}"}
        started[name] = podman.run(processes, name, service, {**common, **listen, **env}, volumes)
        wait_ready(metrics[service], timeout=60)

    start(
        "policy",
        {
            "SMARTHOST_POLICY_LISTEN": f"127.0.0.1:{grpc}",
            "SMARTHOST_POLICY_FILE": "/etc/smarthost/policy.yaml",
            "SMARTHOST_DNS_SERVERS": dns_server.address,
        },
        (f"{policy_file}:/etc/smarthost/policy.yaml:ro",),
    )
    start("ingress-smtp", {"SMARTHOST_SMTP_LISTEN": f"0.0.0.0:{smtp}", "SMARTHOST_POLICY_ADDR": f"127.0.0.1:{grpc}"})
    start(
        "delivery",
        {
            "SMARTHOST_DNS_SERVERS": dns_server.address,
            "SMARTHOST_DELIVERY_PORT": str(mx_port),
            "SMARTHOST_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
        },
    )
    wait_for_port("127.0.0.1", smtp)

    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], BODY)
    wait_until(lambda: len(destination.messages) == 1, timeout=30, what="delivery through the containers")
    assert destination.messages[0].data.endswith(BODY)

    # 127.0.0.9 is outside the policy's networks (127.0.0.1/32).
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10, source_address=("127.0.0.9", 0)) as client:
        client.ehlo("stranger.test")
        code, reply = client.mail("mallory@sender.test")
    assert (code, reply[:5]) == (554, b"5.7.1"), reply

    for name in started:
        # As the chart's securityContext demands: not root, nothing writable but /tmp.
        assert podman.podman("exec", name, "id", "-u").strip() == "10001"
        with pytest.raises(RuntimeError, match="Read-only file system"):
            podman.podman("exec", name, "touch", "/opt/smarthost/written")
        podman.podman("exec", name, "touch", "/tmp/written")

    for name, logs in reversed(started.items()):
        assert podman.stop(name, STOP_TIMEOUT) == 0, logs.log()
        logs.wait(10)
        assert " stopped" in logs.log(), logs.log()
