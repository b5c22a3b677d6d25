"""The per-destination limit holds across workers: never more transactions at once than allowed."""

from support.redis_server import RedisServer
from support.relay import Relay
from support.waiting import wait_until

from delivery.helpers import FAST, HOSTS, put_many, queue_is_empty
from delivery.peers import ConcurrencyRecordingHandler, Peer

MESSAGES = 12


def test_two_workers_share_one_destination_limit(relay: Relay, redis_server: RedisServer, mx_port: int) -> None:
    mx = ConcurrencyRecordingHandler(hold=0.3)
    peer = Peer(mx, HOSTS["stall.test"], mx_port)
    try:
        # Each worker alone could open ten transactions to the one domain.
        env = {**FAST, "SMARTHOST_DESTINATION_CONCURRENCY": "2", "SMARTHOST_DELIVERY_CONCURRENCY": "10"}
        relay.start_delivery(**env)
        relay.start_delivery(**env)
        put_many(
            redis_server.url,
            [
                ("alice@sender.test", [f"r{n}@stall.test"], f"Subject: {n}\r\n\r\nbody\r\n".encode())
                for n in range(MESSAGES)
            ],
        )
        wait_until(lambda: len(mx.messages) == MESSAGES, timeout=60, what="every message delivered")
        wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    finally:
        peer.stop()
    # Reached (the workers did run in parallel) and never exceeded.
    assert mx.most_at_once == 2


def test_one_worker_fills_the_destination_limit_with_its_defaults(
    relay: Relay, redis_server: RedisServer, mx_port: int
) -> None:
    """A slow MX gets as many transactions as the destination limit allows (20), not the old ten per worker."""
    mx = ConcurrencyRecordingHandler(hold=1.0)
    peer = Peer(mx, HOSTS["stall.test"], mx_port)
    try:
        relay.start_delivery(**FAST)
        put_many(
            redis_server.url,
            [("alice@sender.test", [f"r{n}@stall.test"], f"Subject: {n}\r\n\r\nbody\r\n".encode()) for n in range(40)],
        )
        wait_until(lambda: len(mx.messages) == 40, timeout=60, what="every message delivered")
        wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    finally:
        peer.stop()
    assert mx.most_at_once == 20
