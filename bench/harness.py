"""What the end-to-end benchmarks share: the relay's world on loopback, sinks, CPU time, percentiles.

The processes are the tests' own (`tests/support`), so a benchmark runs the
services exactly as the system tests do; every one of them is stopped when
the `loopback_world` block ends, also on failure. Import this module before
`support`: it puts `tests/` on sys.path (alphabetical import order does so).
"""

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# As pytest's `pythonpath = ["tests"]`: the test support code is importable as `support`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.dns_server import DnsServer
from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup
from support.redis_server import RedisServer
from support.relay import Relay
from support.standard import MX_HOSTS, STANDARD_ZONE, UNLIMITED_POLICY

# dnsmasq answers its own records with TTL 0, which no real zone does and
# which would keep the policy's DNS cache empty: give them five minutes.
ZONE_TTL = "local-ttl=300"

SENDER = "alice@sender.test"
# Two destination domains, each with its MX on its own loopback address.
DESTINATIONS = ("example.test", "other.test")


def body(size: int) -> bytes:
    """A plain message of about `size` bytes, in 76-character lines."""
    header = b"From: Alice <alice@sender.test>\r\nTo: Bob <bob@example.test>\r\nSubject: benchmark\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    return header + line * max(1, (size - len(header)) // len(line))


@dataclass(frozen=True)
class World:
    group: ProcessGroup
    redis: RedisServer
    relay: Relay
    # The port every destination MX listens on.
    mx_port: int


@contextmanager
def loopback_world() -> Iterator[World]:
    """Redis, the standard DNS zone and the relay's settings; the caller starts the services it measures."""
    with tempfile.TemporaryDirectory(prefix="smarthost-bench-") as tmp:
        workdir = Path(tmp)
        group = ProcessGroup(workdir)
        try:
            redis = RedisServer(group, workdir / "redis")
            dns = DnsServer(group, workdir, [*STANDARD_ZONE, ZONE_TTL], free_port())
            mx_port = free_port(*MX_HOSTS.values())
            relay = Relay(
                group, workdir, redis_url=redis.url, dns=dns.address, delivery_port=mx_port, policy=UNLIMITED_POLICY
            )
            # As production runs: per-message DEBUG lines would be measured too.
            relay.env["SMARTHOST_LOG_LEVEL"] = "INFO"
            yield World(group, redis, relay, mx_port)
        except BaseException:
            print(group.logs()[-4000:], file=sys.stderr)
            raise
        finally:
            group.stop_all()


def start_sink(group: ProcessGroup, host: str, port: int) -> Process:
    """A plain aiosmtpd server in its own process that accepts every message and discards it.

    Not the tests' in-process `SmtpSink`: its thread would share this
    process's interpreter lock with the clients being measured.
    """
    process = group.start(
        f"sink-{host}", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{host}:{port}", "-c", "aiosmtpd.handlers.Sink"]
    )
    wait_for_port(host, port)
    return process


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` every 10 ms (finer than the tests' wait) until `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s")
        time.sleep(0.01)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
