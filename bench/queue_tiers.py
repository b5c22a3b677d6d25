"""What the disk tier costs and what it drains at, against Redis alone, in the same run.

Fast path: SESSIONS x PER_SESSION messages through ingress, policy and one
delivery worker to live sinks, first without a spool, then with one
configured (its memory tier never full): end-to-end rate, the relay's CPU per
message (ingress, policy, delivery, Redis, PostgreSQL) and the PostgreSQL
transactions per message (the promise: none).

Drain: BACKLOG messages to a destination whose MX is down are deferred, then
the MX comes up and `smarthostctl queue retry --all` makes them due: the rate
at which they leave, once with their bodies in Redis (no spool) and once
with their bodies on disk.
"""

import asyncio
import subprocess
import time

import aiosmtplib
from harness import SENDER, World, body, cpu_seconds, loopback_world, start_sink, until
from support.postgres_server import PostgresServer
from support.relay import BIN
from support.standard import MX_HOSTS

from smarthost_common.queue import QUEUE_INDEX, TIERS

SESSIONS = 8
PER_SESSION = 50
SIZE = 20 * 1024
BACKLOG = 1000
LIVE, DEAD = "example.test", "other.test"
PHASE_TIMEOUT = 120.0


async def send(port: int, domain: str, sessions: int, per_session: int) -> None:
    data = body(SIZE)

    async def session(number: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="customer.test", timeout=30)
        await client.connect(start_tls=False)
        try:
            for n in range(per_session):
                await client.sendmail(SENDER, [f"user{number}-{n}@{domain}"], data)
        finally:
            await client.quit()

    async with asyncio.timeout(PHASE_TIMEOUT):
        await asyncio.gather(*(session(number) for number in range(sessions)))


def pg_commits(postgres: PostgresServer | None) -> int:
    if postgres is None:
        return 0
    rows = postgres.query("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")
    return int(str(rows[0][0]))


def fast_path(world: World, postgres: PostgresServer | None) -> tuple[float, float, float]:
    """End-to-end messages per second, relay CPU ms per message, PostgreSQL commits per message."""
    client = world.redis.client()
    client.flushall()
    env = {"SMARTHOST_SPOOL_URL": postgres.url} if postgres else {}
    policy = world.relay.start_policy()
    ingress = world.relay.start_ingress(policy, **env)
    delivery = world.relay.start_delivery(**env)
    pids = [ingress.process.pid, policy.process.pid, delivery.process.pid]
    redis_pid = world.redis.process.pid if world.redis.process else 0
    postgres_pids = [postgres.process.pid] if postgres and postgres.process else []
    asyncio.run(send(ingress.port, LIVE, 2, 5))  # warm-up
    until(lambda: client.zcard(QUEUE_INDEX) == 0, "warm-up delivered", PHASE_TIMEOUT)
    total = SESSIONS * PER_SESSION
    cpu = sum(cpu_seconds(pid) for pid in [*pids, redis_pid, *_children(postgres_pids)])
    commits = pg_commits(postgres)
    started = time.perf_counter()
    asyncio.run(send(ingress.port, LIVE, SESSIONS, PER_SESSION))
    until(lambda: client.zcard(QUEUE_INDEX) == 0, "every message delivered", PHASE_TIMEOUT)
    rate = total / (time.perf_counter() - started)
    cpu = sum(cpu_seconds(pid) for pid in [*pids, redis_pid, *_children(postgres_pids)]) - cpu
    # Our own query is one commit too.
    commits = pg_commits(postgres) - commits - (1 if postgres else 0)
    for service in (delivery, ingress, policy):
        service.process.stop()
    return rate, cpu / total * 1000, commits / total


def drain(world: World, postgres: PostgresServer | None) -> tuple[float, int]:
    """Messages per second leaving a backlog of BACKLOG deferred messages, and how many were on disk."""
    client = world.redis.client()
    client.flushall()
    env = {"SMARTHOST_SPOOL_URL": postgres.url} if postgres else {}
    policy = world.relay.start_policy()
    ingress = world.relay.start_ingress(policy, **env)
    delivery = world.relay.start_delivery(SMARTHOST_RETRY_SCHEDULE="1h", **env)
    asyncio.run(send(ingress.port, DEAD, 10, BACKLOG // 10))
    until(lambda: client.zcard("smarthost:queue:deferred") == BACKLOG, "the backlog deferred", PHASE_TIMEOUT)
    on_disk = int(client.hget(TIERS, "disk_messages") or 0)
    sink = start_sink(world.group, MX_HOSTS[DEAD], world.mx_port)
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "smarthostctl"), "queue", "retry", "--all"],
        env={"SMARTHOST_REDIS_URL": world.redis.url},
        check=True,
        capture_output=True,
    )
    until(lambda: client.zcard(QUEUE_INDEX) == 0, "the backlog drained", PHASE_TIMEOUT)
    rate = BACKLOG / (time.perf_counter() - started)
    for process in (delivery.process, ingress.process, policy.process, sink):
        process.stop()
    return rate, on_disk


def _children(pids: list[int]) -> list[int]:
    """A PostgreSQL server's processes: the postmaster and its backends and workers."""
    found = list(pids)
    for pid in pids:
        listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        found += [int(child) for child in listed]
    return found


def main() -> None:
    with loopback_world() as world:
        start_sink(world.group, MX_HOSTS[LIVE], world.mx_port)
        postgres = PostgresServer(world.group)
        try:
            redis_only = fast_path(world, None)
            spooled = fast_path(world, postgres)
            memory_drain, _ = drain(world, None)
            disk_drain, on_disk = drain(world, postgres)
        finally:
            postgres.remove()

    total = SESSIONS * PER_SESSION
    print(f"queue tiers, fast path: {total} messages of {SIZE // 1024} KiB through ingress and one worker")
    print(f"  {'':<24}{'msgs/s':>9} {'ratio':>7} {'CPU ms/msg':>11} {'PG commits/msg':>15}")
    for label, (rate, cpu, commits) in (("Redis only:", redis_only), ("with the spool:", spooled)):
        print(f"  {label:<24}{rate:9.1f} {rate / redis_only[0]:7.2f} {cpu:11.2f} {commits:15.2f}")
    print(f"queue tiers, drain: {BACKLOG} deferred messages of {SIZE // 1024} KiB, then the MX comes back")
    print(f"  {'bodies in Redis:':<24}{memory_drain:9.1f} {1:7.2f}")
    print(f"  {'bodies on disk:':<24}{disk_drain:9.1f} {disk_drain / memory_drain:7.2f}  ({on_disk} on disk)")


if __name__ == "__main__":
    main()
