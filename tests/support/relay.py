"""The smarthost services as real processes, configured only by SMARTHOST_*."""

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


@dataclass(frozen=True)
class Listener:
    process: Process
    host: str
    port: int
    metrics_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def wait_ready(metrics_port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"service with metrics port {metrics_port} not ready after {timeout}s")


class Relay:
    """Starts policy, ingress and delivery processes sharing one environment."""

    def __init__(
        self, group: ProcessGroup, workdir: Path, *, redis_url: str, dns: str, delivery_port: int, policy: str
    ) -> None:
        self._group = group
        self.policy_file = workdir / "policy.yaml"
        self.policy_file.write_text(policy)
        self.env = {
            "SMARTHOST_REDIS_URL": redis_url,
            "SMARTHOST_POLICY_FILE": str(self.policy_file),
            "SMARTHOST_DNS_SERVERS": dns,
            "SMARTHOST_DELIVERY_PORT": str(delivery_port),
            "SMARTHOST_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
            "SMARTHOST_HOSTNAME": "relay.test",
            "SMARTHOST_LOG_LEVEL": "DEBUG",
        }
        self._count = 0

    def _start(self, name: str, script: str, env: dict[str, str]) -> tuple[Process, int]:
        self._count += 1
        metrics_port = free_port()
        process = self._group.start(
            f"{name}-{self._count}",
            [str(BIN / script)],
            {**self.env, "SMARTHOST_METRICS_LISTEN": f"127.0.0.1:{metrics_port}", **env},
        )
        return process, metrics_port

    def start_policy(self, **env: str) -> Listener:
        """On a free port, or on SMARTHOST_POLICY_LISTEN's (a restart keeps the address its clients know)."""
        port = (
            int(env["SMARTHOST_POLICY_LISTEN"].rpartition(":")[2]) if "SMARTHOST_POLICY_LISTEN" in env else free_port()
        )
        process, metrics = self._start(
            "policy", "smarthost-policy", {"SMARTHOST_POLICY_LISTEN": f"127.0.0.1:{port}", **env}
        )
        wait_ready(metrics)
        return Listener(process, "127.0.0.1", port, metrics)

    def start_ingress(self, policy: Listener, host: str = "127.0.0.1", **env: str) -> Listener:
        """On a free port, or on SMARTHOST_SMTP_LISTEN's (a restart keeps the address its clients know)."""
        listen_env = env.get("SMARTHOST_SMTP_LISTEN", "")
        port = int(listen_env.rpartition(":")[2]) if listen_env else free_port(host)
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        process, metrics = self._start(
            "ingress",
            "smarthost-ingress",
            {"SMARTHOST_SMTP_LISTEN": listen, "SMARTHOST_POLICY_ADDR": policy.address, **env},
        )
        wait_for_port(host, port)
        return Listener(process, host, port, metrics)

    def start_delivery(self, **env: str) -> Listener:
        process, metrics = self._start("delivery", "smarthost-delivery", env)
        wait_ready(metrics)
        return Listener(process, "", 0, metrics)
