"""What backlog tests share: the dead destination, a relay without a rate limit in the way, the tiers' counts."""

import json
import subprocess
from pathlib import Path

import psycopg
from support.ports import wait_for_port
from support.processes import Process, ProcessGroup
from support.relay import BIN

DEAD = "dead.test"
DEAD_MX = "127.0.0.5"

FAST = {
    "SMARTHOST_RETRY_SCHEDULE": "2s",
    "SMARTHOST_CLAIM_IDLE": "3s",
    "SMARTHOST_DELIVERY_TIMEOUT": "20s",
    "SMARTHOST_DELIVERY_CONNECT_TIMEOUT": "5s",
    "SMARTHOST_QUEUE_METRICS_INTERVAL": "1s",
}

SINK_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "id_sink.py"


class IdSink:
    """A destination MX in its own process; `ids()` lists the test ids it accepted, repeats included."""

    def __init__(self, group: ProcessGroup, workdir: Path, host: str, port: int) -> None:
        self.path = workdir / f"arrived-{host}.txt"
        self.path.touch()
        self.process: Process = group.start(
            f"sink-{host}", [str(BIN / "python"), str(SINK_SCRIPT), host, str(port), str(self.path)]
        )
        wait_for_port(host, port)

    def ids(self) -> list[str]:
        return [line.split()[0] for line in self.path.read_text().splitlines()]

    def arrivals(self) -> dict[str, float]:
        """Unix time each test id first arrived."""
        first: dict[str, float] = {}
        for line in self.path.read_text().splitlines():
            test_id, at = line.split()
            first.setdefault(test_id, float(at))
        return first


def ctl(redis_url: str, *args: str, **env: str) -> str:
    done = subprocess.run(
        [str(BIN / "smarthostctl"), *args],
        env={"SMARTHOST_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout


def stats(redis_url: str, **env: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(ctl(redis_url, "--json", "queue", "stats", **env))
    return result


def tiers(redis_url: str) -> dict[str, int]:
    found: dict[str, int] = stats(redis_url)["tiers"]  # type: ignore[assignment]
    return found


def spool_rows(postgres_url: str) -> int:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM smarthost_spool").fetchone()
    return int(row[0]) if row else 0
