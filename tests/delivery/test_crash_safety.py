"""Nothing is lost when workers die: takeover of abandoned entries, dead letters, SIGTERM drain."""

import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import FAST, HOSTS, ctl, put, put_many, queue_is_empty
from delivery.peers import Peer, StallingHandler


@pytest.fixture
def stalling_mx(mx_port: int) -> Iterator[Callable[..., Peer]]:
    started: list[Peer] = []

    def start(stall: float, answer: str | None = None) -> Peer:
        peer = Peer(StallingHandler(stall, answer), HOSTS["stall.test"], mx_port)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


def handler(peer: Peer) -> StallingHandler:
    assert isinstance(peer.handler, StallingHandler)
    return peer.handler


def test_a_worker_killed_mid_data_loses_nothing(
    relay: Relay, stalling_mx: Callable[..., Peer], redis_server: RedisServer
) -> None:
    mx = handler(stalling_mx(60, "451 4.3.0 too late"))
    first = relay.start_delivery(**FAST)

    put(redis_server.url, "alice@sender.test", ["bob@stall.test"])
    wait_until(mx.stalled.is_set, timeout=30, what="the first worker to send DATA")
    first.process.popen.kill()
    first.process.wait(10)
    relay.start_delivery(**FAST)

    wait_until(lambda: len(mx.messages) == 1, timeout=60, what="delivery by the second worker")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert mx.messages[0].rcpt_tos == ("bob@stall.test",)


def test_sigterm_finishes_the_transaction_in_flight_then_exits(
    relay: Relay, stalling_mx: Callable[..., Peer], redis_server: RedisServer
) -> None:
    mx = handler(stalling_mx(3))
    worker = relay.start_delivery(**FAST)

    put(redis_server.url, "alice@sender.test", ["bob@stall.test"])
    wait_until(mx.stalled.is_set, timeout=30, what="DATA in flight")
    worker.process.signal(signal.SIGTERM)

    assert worker.process.wait(30) == 0
    assert len(mx.messages) == 1
    assert queue_is_empty(redis_server)
    assert "draining" in worker.process.log()


def test_a_message_that_keeps_failing_workers_goes_to_the_dead_letter_stream(
    relay: Relay, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    try:
        # A record no worker can read: every attempt fails before delivery starts.
        client.hset("smarthost:msg:POISON", mapping={"record": b"\xff\xff\xff", "body": b"x\r\n"})
        client.zadd("smarthost:queue:index", {"POISON": time.time() * 1000})
        client.xadd("smarthost:queue:ready", {"id": "POISON"})
        delivery = relay.start_delivery(**{**FAST, "SMARTHOST_CLAIM_IDLE": "1s", "SMARTHOST_DEAD_LETTER_AFTER": "2"})

        wait_until(lambda: client.xlen("smarthost:queue:dead") == 1, timeout=30, what="dead-lettering")
        assert client.xlen("smarthost:queue:ready") == 0
        assert client.exists("smarthost:msg:POISON")
    finally:
        client.close()
    assert "message moved to the dead-letter stream" in delivery.process.log()
    stats = ctl(redis_server.url, "queue", "stats", "--json")
    assert '"dead": 1' in stats.stdout, stats
    listing = ctl(redis_server.url, "queue", "list")
    assert re.search(r"^POISON +dead \(unreadable record\) +- ", listing.stdout, re.MULTILINE), listing


def test_a_thousand_messages_through_three_workers_one_killed_and_restarted(
    relay: Relay,
    sinks: Callable[..., SmtpSink],
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    destinations = [sinks("example.test"), sinks("other.test")]
    env = {**FAST, "SMARTHOST_DELIVERY_CONCURRENCY": "20"}
    workers = [relay.start_delivery(**env) for _ in range(3)]
    count = 1000
    messages = [
        (
            "alice@sender.test",
            [f"rcpt{n}@{'example' if n % 2 else 'other'}.test"],
            f"Message-ID: <bulk-{n}@sender.test>\r\nSubject: bulk {n}\r\n\r\nbody {n}\r\n".encode(),
        )
        for n in range(count)
    ]
    started = time.monotonic()
    put_many(redis_server.url, messages)

    def delivered() -> Counter[str]:
        ids: Counter[str] = Counter()
        for sink in destinations:
            for message in list(sink.messages):
                ids[message.data.split(b"\r\n", 1)[0].decode()] += 1
        return ids

    wait_until(lambda: len(delivered()) >= count // 3, timeout=60, what="a third delivered")
    workers[1].process.popen.kill()
    workers[1].process.wait(10)
    killed_at = len(delivered())
    relay.start_delivery(**env)

    wait_until(lambda: len(delivered()) == count, timeout=120, what="every message delivered")
    wait_until(lambda: queue_is_empty(redis_server), timeout=30, what="queue settled")
    seen = delivered()
    duplicates = sum(seen.values()) - len(seen)
    with capsys.disabled():
        print(
            f"\n{count} messages, worker killed after {killed_at} delivered: "
            f"{len(seen)} unique, {duplicates} duplicates, {time.monotonic() - started:.1f}s"
        )
    assert set(seen) == {f"Message-ID: <bulk-{n}@sender.test>" for n in range(count)}
