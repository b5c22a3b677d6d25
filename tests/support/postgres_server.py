"""A private PostgreSQL cluster on a free port: the queue's disk tier, as production runs it.

`initdb` into a fresh folder, then `postgres` on 127.0.0.1 with its defaults
(fsync and synchronous commit on). PostgreSQL refuses to run as root, so when
the tests run as root the cluster belongs to the `postgres` user.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql package (make test does)")
    return found[-1]


class PostgresServer:
    def __init__(self, group: ProcessGroup) -> None:
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._group = group
        self._as_user = os.geteuid() == 0
        # Not under pytest's tmp_path: its folders are root's alone, and the cluster may not be.
        self.data_dir = Path(tempfile.mkdtemp(prefix="smarthost-pg-"))
        if self._as_user:
            account = pwd.getpwnam("postgres")
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        subprocess.run(
            [*self._user(), _bin("initdb"), "-D", str(self.data_dir / "data"), "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        self.process: Process | None = None
        self.start()

    def _user(self) -> list[str]:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if self._as_user else []

    def start(self) -> None:
        argv = [
            *self._user(),
            _bin("postgres"),
            "-D",
            str(self.data_dir / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        self.process = self._group.start(f"postgres-{self.port}", argv)
        wait_for_port("127.0.0.1", self.port, timeout=30)
        # The port opens before crash recovery ends; wait until it takes queries.
        deadline = time.monotonic() + 60
        while True:
            try:
                self.query("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def crash(self) -> None:
        """Immediate shutdown: no checkpoint, crash recovery at the next start (what a killed pod leaves)."""
        if self.process:
            self.process.signal(signal.SIGQUIT)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process:
            self.process.signal(signal.SIGINT)  # fast shutdown: no waiting for clients to leave
            self.process.stop()

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
