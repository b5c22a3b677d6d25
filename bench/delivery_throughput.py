"""Messages delivered per second from a pre-filled queue, by 1 and by 2 delivery workers.

MESSAGES messages, one recipient each, alternately for two destination
domains whose MX hosts are plain aiosmtpd sinks (own processes) on loopback.
The baseline is this process sending the same messages straight to the same
sinks with aiosmtplib, CONCURRENCY at a time and reusing connections as
delivery does: what delivery adds is the queue, DNS, settling and its
bookkeeping. Measured in the same run, so the ratios mean the same anywhere.
"""

import asyncio
import time

import aiosmtplib
import redis
from harness import DESTINATIONS, SENDER, World, body, cpu_seconds, loopback_world, start_sink, until
from redis.asyncio import Redis
from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient
from support.scrape import Scrape
from support.standard import MX_HOSTS

from smarthost_common.queue import QUEUE_INDEX, add_to_queue, new_queue_id

MESSAGES = 1000
SIZE = 4096
# Messages one worker delivers at once (SMARTHOST_DELIVERY_CONCURRENCY), and the baseline's.
CONCURRENCY = 10
# Every phase ends within this or the benchmark fails.
PHASE_TIMEOUT = 60.0

Message = tuple[str, str, bytes]  # sender, recipient, bytes


def messages() -> list[Message]:
    data = body(SIZE)
    return [(SENDER, f"user{n}@{DESTINATIONS[n % len(DESTINATIONS)]}", data) for n in range(MESSAGES)]


async def send_direct(port: int, batch: list[Message]) -> None:
    """CONCURRENCY senders sharing one list; each keeps one connection per MX host."""
    pending = iter(batch)

    async def sender() -> None:
        connections: dict[str, aiosmtplib.SMTP] = {}
        try:
            for mail_from, recipient, data in pending:
                host = MX_HOSTS[recipient.rpartition("@")[2]]
                if host not in connections:
                    client = aiosmtplib.SMTP(hostname=host, port=port, local_hostname="relay.test", timeout=10)
                    await client.connect(start_tls=False)
                    connections[host] = client
                await connections[host].sendmail(mail_from, [recipient], data)
        finally:
            for client in connections.values():
                await client.quit()

    async with asyncio.timeout(PHASE_TIMEOUT):
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))


def baseline(port: int, batch: list[Message]) -> tuple[float, float]:
    """Messages per second and this process's CPU seconds per message."""
    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(send_direct(port, batch))
    return len(batch) / (time.perf_counter() - started), (time.process_time() - cpu) / len(batch)


async def fill(url: str, batch: list[Message]) -> None:
    """Queue every message as the ingress's `enqueue` does, but all in one MULTI.

    The workers, already waiting on the stream, then see the whole queue at
    once: the clock measures delivery, not how fast this loop fills Redis.
    """
    client = Redis.from_url(url)
    try:
        async with client.pipeline(transaction=True) as pipe:
            for mail_from, recipient, data in batch:
                record = QueuedMessage(
                    queue_id=new_queue_id(),
                    mail_from=mail_from,
                    recipients=[Recipient(address=recipient)],
                    client_ip="127.0.0.1",
                    helo="customer.test",
                    customer="loopback",
                    received_at_ms=int(time.time() * 1000),
                )
                add_to_queue(pipe, record, data, size=len(data))
            await pipe.execute()
    finally:
        await client.aclose()


def waiting_readers(client: redis.Redis) -> int:
    """Redis connections blocked in XREADGROUP: workers past start-up, waiting on the stream."""
    return sum(1 for info in client.client_list() if info["cmd"] == "xreadgroup" and "b" in info["flags"])


def workers(world: World, count: int, batch: list[Message]) -> tuple[float, float]:
    """Messages per second with `count` workers on a pre-filled queue, and their CPU seconds per message."""
    client = world.redis.client()
    try:
        client.flushall()
        started = [world.relay.start_delivery(SMARTHOST_DELIVERY_CONCURRENCY=str(CONCURRENCY)) for _ in range(count)]
        until(lambda: waiting_readers(client) == count, "workers waiting on the stream", PHASE_TIMEOUT)
        cpu = sum(cpu_seconds(worker.process.pid) for worker in started)
        asyncio.run(fill(world.redis.url, batch))
        clock = time.perf_counter()
        # A message leaves the index when it is settled (delivered or bounced), not when deferred.
        until(lambda: client.zcard(QUEUE_INDEX) == 0, f"{len(batch)} messages settled", PHASE_TIMEOUT)
        rate = len(batch) / (time.perf_counter() - clock)
        cpu = sum(cpu_seconds(worker.process.pid) for worker in started) - cpu
        delivered = sum(
            Scrape(worker.metrics_port).value("smarthost_delivery_attempts_total", result="delivered")
            for worker in started
        )
        assert delivered == len(batch), f"{delivered} of {len(batch)} delivered"
        for worker in started:
            worker.process.stop()
        return rate, cpu / len(batch)
    finally:
        client.close()


def main() -> None:
    batch = messages()
    with loopback_world() as world:
        for domain in DESTINATIONS:
            start_sink(world.group, MX_HOSTS[domain], world.mx_port)
        base, base_cpu = baseline(world.mx_port, batch)
        one, one_cpu = workers(world, 1, batch)
        two, two_cpu = workers(world, 2, batch)

    print(f"delivery throughput, {MESSAGES} queued messages of {SIZE // 1024} KiB to 2 domains, {CONCURRENCY} at once")
    print(f"  {'':<28}{'msgs/s':>9} {'ratio':>7} {'CPU ms/msg':>11}")
    print(f"  {'direct aiosmtplib sender:':<28}{base:9.1f} {1:7.2f} {base_cpu * 1000:11.2f}")
    print(f"  {'1 delivery worker:':<28}{one:9.1f} {one / base:7.2f} {one_cpu * 1000:11.2f}")
    print(f"  {'2 delivery workers:':<28}{two:9.1f} {two / base:7.2f} {two_cpu * 1000:11.2f}")
    print(f"  2 workers vs 1: ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
