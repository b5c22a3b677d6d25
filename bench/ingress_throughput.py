"""Messages accepted per second through the relay's front door: ingress, policy, Redis enqueue.

SESSIONS parallel SMTP sessions each send PER_SESSION messages, one after
the other, to the ingress (no delivery worker runs). The baseline is the same
clients sending to a plain aiosmtpd server that accepts and discards, in the
same run, so the ratio means the same on a laptop and on a loaded CI machine.
"""

import asyncio
import time

import aiosmtplib
from harness import DESTINATIONS, SENDER, body, cpu_seconds, loopback_world, percentile, start_sink
from support.ports import free_port

from smarthost_common.queue import READY_STREAM

SESSIONS = 8
PER_SESSION = 50
SIZE = 4096
# Every phase, warm-up included, ends within this or the benchmark fails.
PHASE_TIMEOUT = 60.0


async def session(port: int, number: int, count: int, latencies: list[float]) -> None:
    """One SMTP session sending `count` messages; each message's MAIL to final 250 is one latency."""
    message = body(SIZE)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="customer.test", timeout=10)
    await client.connect(start_tls=False)
    try:
        for n in range(count):
            recipient = f"user{number}-{n}@{DESTINATIONS[n % len(DESTINATIONS)]}"
            started = time.perf_counter()
            # Raises on any refusal: a refused message must fail the benchmark, not speed it up.
            await client.sendmail(SENDER, [recipient], message)
            latencies.append(time.perf_counter() - started)
    finally:
        await client.quit()


async def load(port: int, sessions: int, per_session: int) -> tuple[float, list[float]]:
    """Wall time for every session to finish, and every message's latency."""
    latencies: list[float] = []
    started = time.perf_counter()
    async with asyncio.timeout(PHASE_TIMEOUT):
        await asyncio.gather(*(session(port, number, per_session, latencies) for number in range(sessions)))
    return time.perf_counter() - started, latencies


def measure(port: int, server_pids: list[int]) -> tuple[float, list[float], list[float]]:
    """Messages per second, latencies, and CPU seconds per message of each server process."""
    asyncio.run(load(port, 2, 5))  # warm-up: connections, policy's DNS cache, code paths
    before = [cpu_seconds(pid) for pid in server_pids]
    elapsed, latencies = asyncio.run(load(port, SESSIONS, PER_SESSION))
    total = SESSIONS * PER_SESSION
    cpu = [(cpu_seconds(pid) - was) / total for pid, was in zip(server_pids, before, strict=True)]
    return total / elapsed, latencies, cpu


def row(label: str, rate: float, base: float, latencies: list[float], cpu: float) -> str:
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    return f"  {label:<22}{rate:9.1f} {rate / base:7.2f} {p50:8.2f} {p99:8.2f} {cpu * 1000:10.2f}"


def main() -> None:
    with loopback_world() as world:
        sink_port = free_port()
        sink = start_sink(world.group, "127.0.0.1", sink_port)
        base_rate, base_latencies, (base_cpu,) = measure(sink_port, [sink.pid])
        sink.stop()

        policy = world.relay.start_policy()
        ingress = world.relay.start_ingress(policy)
        rate, latencies, (ingress_cpu, policy_cpu) = measure(ingress.port, [ingress.process.pid, policy.process.pid])
        with world.redis.client() as client:
            queued = client.xlen(READY_STREAM)
        assert queued >= SESSIONS * PER_SESSION, f"only {queued} messages in the ready stream"

    print(f"ingress throughput, {SESSIONS} sessions x {PER_SESSION} messages of {SIZE // 1024} KiB, one recipient each")
    print(f"  {'':<22}{'msgs/s':>9} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>10}")
    print(row("plain aiosmtpd sink:", base_rate, base_rate, base_latencies, base_cpu))
    print(row("relay ingress:", rate, base_rate, latencies, ingress_cpu))
    print(f"  {'':<22}{'':>9} {'':>7} {'':>8} {'':>8} {policy_cpu * 1000:10.2f}  (policy, beside the ingress)")


if __name__ == "__main__":
    main()
