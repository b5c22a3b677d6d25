"""A destination that is down while more mail than Redis can hold is sent to it, with faults on the way.

BACKLOG_MESSAGES messages of 100 KiB (400 in `make test`; `make test-backlog`
sends 20,000, 2 GiB, through a Redis with `maxmemory 256mb`) go to
`dead.test` over 10 sessions, a client MTA's way: what is answered 4xx is
sent again. Meanwhile the delivery worker is SIGKILLed and restarted and
PostgreSQL crashes and comes back, while mail to a healthy destination must
arrive within seconds. Then the dead MX comes back and every message must
arrive: ids in the bodies, duplicates counted, loss never allowed.
"""

import os
import signal
import smtplib
import threading
import time
from pathlib import Path

from support.load import Message, body, send_until_accepted
from support.postgres_server import PostgresServer
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Relay
from support.standard import UNLIMITED_POLICY
from support.waiting import wait_until

from backlog.world import DEAD, DEAD_MX, IdSink, ctl, spool_rows, stats, tiers

MiB = 1024 * 1024
COUNT = int(os.environ.get("BACKLOG_MESSAGES", "400"))
FULL = COUNT >= 5000
SIZE = 100 * 1024
MAXMEMORY = 256 * MiB if FULL else 24 * MiB
MEMORY_MAX = 64 * MiB if FULL else 8 * MiB
HEALTHY = 20
# Healthy mail sent in the middle of the backlog arrives within this many seconds of its 250.
HEALTHY_WITHIN = 10.0
DELIVERY = {
    "SMARTHOST_RETRY_SCHEDULE": "30s",
    "SMARTHOST_CLAIM_IDLE": "5s",
    "SMARTHOST_DELIVERY_TIMEOUT": "20s",
    "SMARTHOST_DELIVERY_CONNECT_TIMEOUT": "5s",
    "SMARTHOST_QUEUE_METRICS_INTERVAL": "1s",
}


class PeakMemory(threading.Thread):
    """Redis's used_memory, sampled every 0.2 s until stopped."""

    def __init__(self, redis_server: RedisServer) -> None:
        super().__init__(daemon=True)
        self._client = redis_server.client()
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, int(self._client.info("memory")["used_memory"]))


def send_healthy(port: int) -> dict[str, float]:
    """Messages to the healthy destination, one at a time; the time each was answered 250."""
    answered: dict[str, float] = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("customer.test")
        for n in range(HEALTHY):
            test_id = f"healthy-{n}"
            client.sendmail("alice@sender.test", [f"h{n}@example.test"], body(test_id, 10 * 1024))
            answered[test_id] = time.time()
    return answered


def test_a_backlog_bigger_than_redis_waits_on_disk_and_every_message_arrives(
    relay: Relay,
    redis_server: RedisServer,
    postgres: PostgresServer,
    processes: ProcessGroup,
    tmp_path: Path,
    mx_port: int,
) -> None:
    redis = redis_server.client()
    redis.config_set("maxmemory", str(MAXMEMORY))
    redis.config_set("maxmemory-policy", "noeviction")
    healthy = IdSink(processes, tmp_path, "127.0.0.2", mx_port)
    relay.policy_file.write_text(UNLIMITED_POLICY)
    spool = {"SMARTHOST_SPOOL_URL": postgres.url}
    ingress = relay.start_ingress(relay.start_policy(), **spool, SMARTHOST_QUEUE_MEMORY_MAX=str(MEMORY_MAX))
    worker = relay.start_delivery(**DELIVERY, **spool)
    peak = PeakMemory(redis_server)
    peak.start()

    stuck = [Message(f"stuck-{n}", "alice@sender.test", f"r{n}@{DEAD}") for n in range(COUNT)]
    refusals: dict[str, int] = {}
    started = time.monotonic()
    sender = threading.Thread(
        target=lambda: refusals.update(send_until_accepted("127.0.0.1", ingress.port, stuck, SIZE, 10, COUNT)),
        daemon=True,
    )
    sender.start()

    def queued() -> int:
        return int(redis.zcard("smarthost:queue:index"))

    wait_until(lambda: queued() >= COUNT // 3, timeout=COUNT, what="a third of the backlog queued")
    worker.process.signal(signal.SIGKILL)
    worker.process.wait(10)
    relay.start_delivery(**DELIVERY, **spool)
    wait_until(lambda: queued() >= COUNT // 2, timeout=COUNT, what="half of the backlog queued")
    answered = send_healthy(ingress.port)
    wait_until(lambda: queued() >= 2 * COUNT // 3, timeout=COUNT, what="two thirds of the backlog queued")
    postgres.crash()
    time.sleep(2)
    postgres.start()
    sender.join(COUNT)
    assert not sender.is_alive(), "the sender did not finish"
    sending = time.monotonic() - started

    wait_until(lambda: set(healthy.ids()) >= set(answered), timeout=30, what="the healthy mail arrived")
    arrived = healthy.arrivals()
    late = {test_id: arrived[test_id] - at for test_id, at in answered.items()}
    assert max(late.values()) < HEALTHY_WITHIN, late
    redis_url = relay.env["SMARTHOST_REDIS_URL"]
    wait_until(lambda: tiers(redis_url)["disk_messages"] >= COUNT * 0.9, timeout=COUNT, what="the backlog on disk")
    backlog = tiers(redis_url)

    # The MX is back and the operator says so (as `postqueue -f` would): the drain rate is the relay's own.
    back = IdSink(processes, tmp_path, DEAD_MX, mx_port)
    comeback = time.time()
    ctl(redis_url, "queue", "retry", "--all")
    wanted = {message.test_id for message in stuck}
    wait_until(lambda: set(back.ids()) >= wanted, timeout=60 + COUNT / 20, what="every message of the backlog")
    draining = time.time() - comeback
    # Messages in flight when the MX came back wait for their next retry: the rate is the other 99%'s.
    times = sorted(back.arrivals().values())
    rate = int(len(times) * 0.99) / (times[int(len(times) * 0.99) - 1] - comeback)
    peak.done.set()
    wait_until(lambda: stats(redis_url)["total"] == 0, timeout=60, what="the queue empty")

    ids = back.ids()
    print(
        f"\nbacklog: {COUNT} x {SIZE // 1024} KiB sent in {sending:.0f}s ({sum(refusals.values())} 4xx answers,"
        f" sent again), {backlog['disk_messages']} on disk and {backlog['memory_messages']} in Redis once sent,"
        f" Redis peak {peak.peak / MiB:.0f} of {MAXMEMORY / MiB:.0f} MiB; healthy mail arrived"
        f" {max(late.values()):.1f}s after its 250 at worst; drained at {rate:.0f} msg/s, the last after"
        f" {draining:.0f}s; {len(ids) - len(set(ids))} duplicates, 0 lost;"
        f" {spool_rows(postgres.url)} orphaned spool rows left for the sweep (the queue is empty)"
    )
    assert set(ids) == wanted
    assert peak.peak < MAXMEMORY
