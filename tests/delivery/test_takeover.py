"""A stopped worker's mail is taken over in seconds, a restarted one resumes its own, a live one keeps its own.

SMARTHOST_CLAIM_IDLE stays at its default (10 minutes) here: what delivers in
seconds is the heartbeat, not the idle-time claim.
"""

import time
from collections.abc import Callable, Iterator

import pytest
from support.redis_server import RedisServer
from support.relay import Relay
from support.waiting import wait_until

from delivery.helpers import HOSTS, put, queue_is_empty
from delivery.peers import Peer, StallingHandler

SETTINGS = {"SMARTHOST_RETRY_SCHEDULE": "1s", "SMARTHOST_DELIVERY_TIMEOUT": "60s"}


@pytest.fixture
def stalling_mx(mx_port: int) -> Iterator[Callable[[float], StallingHandler]]:
    started: list[Peer] = []

    def start(stall: float) -> StallingHandler:
        peer = Peer(StallingHandler(stall, "451 4.3.0 too late"), HOSTS["stall.test"], mx_port)
        started.append(peer)
        assert isinstance(peer.handler, StallingHandler)
        return peer.handler

    yield start
    for peer in started:
        peer.stop()


def test_a_killed_worker_s_mail_is_taken_over_within_thirty_seconds(
    relay: Relay, stalling_mx: Callable[[float], StallingHandler], redis_server: RedisServer
) -> None:
    mx = stalling_mx(120)
    doomed = relay.start_delivery(**SETTINGS, SMARTHOST_CONSUMER_NAME="doomed")
    put(redis_server.url, "alice@sender.test", ["bob@stall.test"])
    wait_until(mx.stalled.is_set, timeout=30, what="DATA in flight")
    survivor = relay.start_delivery(**SETTINGS, SMARTHOST_CONSUMER_NAME="survivor")
    doomed.process.popen.kill()
    doomed.process.wait(10)
    killed = time.monotonic()

    wait_until(lambda: len(mx.messages) == 1, timeout=40, what="the survivor's delivery")
    taken_over = time.monotonic() - killed
    print(f"\ntakeover: delivered {taken_over:.1f}s after its worker was killed (heartbeat TTL 15s)")
    assert taken_over < 30, taken_over
    assert "claimed a stopped worker's entry" in survivor.process.log()
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")


def test_a_worker_restarted_under_its_name_resumes_its_own_mail_at_once(
    relay: Relay, stalling_mx: Callable[[float], StallingHandler], redis_server: RedisServer
) -> None:
    mx = stalling_mx(120)
    first = relay.start_delivery(**SETTINGS, SMARTHOST_CONSUMER_NAME="pod-0")
    put(redis_server.url, "alice@sender.test", ["bob@stall.test"])
    wait_until(mx.stalled.is_set, timeout=30, what="DATA in flight")
    first.process.popen.kill()
    first.process.wait(10)
    restarted = time.monotonic()
    relay.start_delivery(**SETTINGS, SMARTHOST_CONSUMER_NAME="pod-0")

    # Well within the heartbeat's TTL (15 s): nobody had to notice the death.
    wait_until(lambda: len(mx.messages) == 1, timeout=10, what="the restarted worker's delivery")
    assert time.monotonic() - restarted < 10
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")


def test_a_live_worker_keeps_a_slow_delivery_past_the_heartbeat_ttl(
    relay: Relay, stalling_mx: Callable[[float], StallingHandler], redis_server: RedisServer
) -> None:
    """Two live workers never deliver the same entry at once: a slow MX does not make its worker look dead."""
    mx = stalling_mx(12)
    mx.answer = None  # after the stall, accept
    ttl = {"SMARTHOST_HEARTBEAT_TTL": "3s"}
    slow = relay.start_delivery(**SETTINGS, **ttl, SMARTHOST_CONSUMER_NAME="slow")
    put(redis_server.url, "alice@sender.test", ["bob@stall.test"])
    wait_until(mx.stalled.is_set, timeout=30, what="DATA in flight")
    other = relay.start_delivery(**SETTINGS, **ttl, SMARTHOST_CONSUMER_NAME="other")

    wait_until(lambda: queue_is_empty(redis_server), timeout=30, what="the slow delivery settled")
    assert mx.transactions == 1 and len(mx.messages) == 1
    assert "claimed" not in other.process.log()
    assert "claimed" not in slow.process.log()


def test_an_entry_left_pending_by_a_redis_restart_is_taken_up_again_by_its_own_worker(
    relay: Relay, stalling_mx: Callable[[float], StallingHandler], redis_server: RedisServer
) -> None:
    """Found by the fault suite: a settle that failed because Redis restarted waited for SMARTHOST_CLAIM_IDLE."""
    mx = stalling_mx(2)
    mx.answer = None  # accept after the stall
    worker = relay.start_delivery(**SETTINGS)
    put(redis_server.url, "alice@sender.test", ["bob@stall.test"])
    wait_until(mx.stalled.is_set, timeout=30, what="DATA in flight")
    assert redis_server.process is not None
    redis_server.process.popen.kill()
    redis_server.process.wait(10)
    wait_until(lambda: "entry left pending" in worker.process.log(), timeout=30, what="the settle failed")
    redis_server.start()  # the append-only file brings the queue back

    wait_until(lambda: queue_is_empty(redis_server), timeout=30, what="the entry settled after all")
    assert len(mx.messages) >= 1
