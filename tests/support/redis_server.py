"""A private redis-server on a free port, with AOF as production runs it."""

import shutil
from pathlib import Path

import redis

from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup


class RedisServer:
    def __init__(
        self, group: ProcessGroup, data_dir: Path, port: int | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.port = port or free_port()
        self._extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._group = group
        self._data_dir = data_dir
        self.process: Process | None = None
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self.process = self._group.start(
            f"redis-{self.port}",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self._data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                *self._extra,
            ],
        )
        wait_for_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)
