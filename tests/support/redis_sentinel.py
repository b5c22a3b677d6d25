"""A Redis primary with replicas and sentinels, as real processes, for failover tests."""

import shutil
from pathlib import Path

import redis

from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup
from support.redis_server import RedisServer
from support.waiting import wait_until

MASTER = "smarthost"


class ReplicatedRedis:
    def __init__(self, group: ProcessGroup, workdir: Path, replicas: int = 1, sentinels: int = 0) -> None:
        self.primary = RedisServer(group, workdir / "redis-primary")
        self.replicas = [
            RedisServer(
                group, workdir / f"redis-replica-{n}", extra=("--replicaof", "127.0.0.1", str(self.primary.port))
            )
            for n in range(replicas)
        ]
        self.sentinels: list[Process] = []
        self.sentinel_ports: list[int] = []
        for n in range(sentinels):
            port = free_port()
            conf = workdir / f"sentinel-{n}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
            )
            binary = shutil.which("redis-server") or "/usr/bin/redis-server"
            self.sentinels.append(group.start(f"sentinel-{port}", [binary, str(conf), "--sentinel"]))
            wait_for_port("127.0.0.1", port)
            self.sentinel_ports.append(port)

    @property
    def sentinel_addresses(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def current_primary_port(self) -> int:
        """What the first sentinel names as the primary now."""
        with redis.Redis(port=self.sentinel_ports[0]) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def wait_synced(self) -> None:
        def synced() -> bool:
            info = self.primary.client().info("replication")
            states = [info.get(f"slave{n}", {}).get("state") for n in range(len(self.replicas))]
            return states == ["online"] * len(self.replicas)

        wait_until(synced, timeout=15, what="replicas connected")
