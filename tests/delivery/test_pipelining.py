"""PIPELINING (RFC 2920): a warm connection's RSET, MAIL, every RCPT and DATA leave in one write."""

from collections.abc import Callable

from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import FAST, HOSTS, parse, put, queue_is_empty, report_parts
from delivery.peers import PipeliningRecorder

WARM = {**FAST, "SMARTHOST_DELIVERY_CONNECTION_IDLE": "30s"}


def arrived(peer: PipeliningRecorder, count: int) -> Callable[[], bool]:
    return lambda: len(peer.data) == count


def one_after_the_other(redis_server: RedisServer, peer: PipeliningRecorder) -> None:
    """Two messages to the peer, the second queued once the first arrived: it can take the warm connection."""
    for n in range(1, 3):
        put(redis_server.url, "alice@sender.test", ["bob@wire.test"])
        wait_until(arrived(peer, n), timeout=30, what=f"message {n}")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")


def test_envelope_and_data_go_in_one_write_and_a_warm_connection_adds_its_rset(
    relay: Relay, redis_server: RedisServer, mx_port: int
) -> None:
    peer = PipeliningRecorder(HOSTS["wire.test"], mx_port)
    try:
        relay.start_delivery(**WARM)
        one_after_the_other(redis_server, peer)
    finally:
        peer.stop()
    assert peer.connections == 1
    envelope = [b"MAIL FROM:<alice@sender.test>", b"RCPT TO:<bob@wire.test>", b"DATA"]
    assert peer.batches == [envelope, [b"RSET", *envelope]]


def test_each_pipelined_recipient_gets_its_own_reply(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer, mx_port: int
) -> None:
    peer = PipeliningRecorder(HOSTS["wire.test"], mx_port)
    sender = sinks("sender.test")
    try:
        relay.start_delivery(**WARM)
        put(redis_server.url, "alice@sender.test", ["bob@wire.test", "nobody@wire.test"])
        put(redis_server.url, "alice@sender.test", ["nobody@wire.test"])
        wait_until(lambda: len(sender.messages) == 2, timeout=30, what="a DSN for each refused recipient")
        wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    finally:
        peer.stop()
    assert len(peer.data) == 1
    for dsn in sender.messages:
        _, (_, status), _ = report_parts(parse(dsn.data))
        assert status["Final-Recipient"] == "rfc822; nobody@wire.test"
        assert status["Status"] == "5.1.1"


def test_a_warm_connection_the_peer_let_go_is_replaced_without_a_deferral(
    relay: Relay, redis_server: RedisServer, mx_port: int
) -> None:
    peer = PipeliningRecorder(HOSTS["wire.test"], mx_port, drop_reused=True)
    try:
        delivery = relay.start_delivery(**WARM)
        one_after_the_other(redis_server, peer)
    finally:
        peer.stop()
    assert peer.connections == 2
    assert "message deferred" not in delivery.process.log()
