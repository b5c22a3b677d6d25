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
    first = put(redis_server.url, "alice@sender.test", ["bob@example.test"])  # nothing listens on its MX
    wait_until(lambda: client.zscore("smarthost:queue:deferred", first) is not None, timeout=30, what="deferral")
    # Marked for the first retry wait (20 s), in Redis for every worker.
    assert 0 < client.pttl("smarthost:down:example.test") <= 20_000

    second = put(redis_server.url, "alice@sender.test", ["carol@example.test"])
    wait_until(lambda: client.zscore("smarthost:queue:deferred", second) is not None, timeout=30, what="deferral")
    log = worker.process.log()
    assert log.count("connect to mx.example.test") == 1, log
    assert "took a connection a moment ago" in log

    # The MX is back and the operator says so: every destination is tried again at once.
    sink = sinks("example.test")
    ctl(redis_server.url, "queue", "retry", "--all")
    wait_until(lambda: len(sink.messages) == 2, timeout=30, what="both delivered")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
