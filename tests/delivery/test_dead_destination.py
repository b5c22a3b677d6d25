"""A destination none of whose MX hosts takes a connection is marked, and its other mail waits without connecting."""

from collections.abc import Callable

from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import ctl, put, queue_is_empty

SETTINGS = {"SMARTHOST_RETRY_SCHEDULE": "20s", "SMARTHOST_DELIVERY_CONNECT_TIMEOUT": "5s"}


def test_a_dead_destination_is_not_tried_again_until_its_mark_runs_out(
    relay: Relay, redis_server: RedisServer, sinks: Callable[..., SmtpSink]
) -> None:
    client = redis_server.client()
    worker = relay.start_delivery(**SETTINGS)
    # Nothing listens on example.test's MX. One failure is not enough to mark it: five in a row are.
    first = [put(redis_server.url, "alice@sender.test", [f"bob{n}@example.test"]) for n in range(5)]
    wait_until(lambda: client.zcard("smarthost:queue:deferred") == 5, timeout=30, what="five deferrals")
    # Marked for the first retry wait (20 s), in Redis for every worker.
    assert 0 < client.pttl("smarthost:down:example.test") <= 20_000
    assert len(first) == 5

    last = put(redis_server.url, "alice@sender.test", ["carol@example.test"])
    wait_until(lambda: client.zscore("smarthost:queue:deferred", last) is not None, timeout=30, what="deferral")
    log = worker.process.log()
    assert log.count("connect to mx.example.test") == 5, log
    assert "took a connection a moment ago" in log

    # The MX is back and the operator says so: every destination is tried again at once.
    sink = sinks("example.test")
    ctl(redis_server.url, "queue", "retry", "--all")
    wait_until(lambda: len(sink.messages) == 6, timeout=30, what="all six delivered")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")


def test_a_connection_that_succeeds_wipes_the_failures_so_far(
    relay: Relay, redis_server: RedisServer, sinks: Callable[..., SmtpSink]
) -> None:
    """A busy but healthy MX that refuses now and then is never marked dead."""
    client = redis_server.client()
    relay.start_delivery(**SETTINGS)
    put(redis_server.url, "alice@sender.test", ["bob@example.test"])
    wait_until(lambda: client.get("smarthost:failures:example.test") == b"1", timeout=30, what="one failure")
    sink = sinks("example.test")
    put(redis_server.url, "alice@sender.test", ["carol@example.test"])
    wait_until(lambda: len(sink.messages) == 1, timeout=30, what="delivered")
    wait_until(lambda: not client.exists("smarthost:failures:example.test"), timeout=10, what="the count wiped")
    assert not client.exists("smarthost:down:example.test")
