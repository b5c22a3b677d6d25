"""What leaves the relay on the wire: normalized line endings, dot-stuffing, TLS, start-up checks."""

import ssl
import subprocess
from collections.abc import Callable
from typing import Any

from support.redis_server import RedisServer
from support.relay import BIN, Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import FAST, HOSTS, parse, put, queue_is_empty, report_parts
from delivery.peers import Peer, TlsRecordingHandler, WireRecorder, untrusted_tls_context


def test_bare_cr_and_lf_never_leave_and_dots_are_stuffed(relay: Relay, redis_server: RedisServer, mx_port: int) -> None:
    recorder = WireRecorder(HOSTS["wire.test"], mx_port)
    try:
        relay.start_delivery(**FAST)
        body = b"Subject: smuggling\r\n\r\nbare LF\nbare CR\rthen\r\n.\r\n.leading dot\n.\nMAIL FROM:<x@y>\r\nend"
        put(redis_server.url, "alice@sender.test", ["bob@wire.test"], body)
        wait_until(lambda: len(recorder.data) == 1, timeout=30, what="DATA at the recorder")
        wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    finally:
        recorder.stop()

    wire = recorder.data[0]
    assert wire == (
        b"Subject: smuggling\r\n\r\nbare LF\r\nbare CR\r\nthen\r\n"
        b"..\r\n..leading dot\r\n..\r\nMAIL FROM:<x@y>\r\nend\r\n.\r\n"
    )
    assert b"\r" not in wire.replace(b"\r\n", b"") and b"\n" not in wire.replace(b"\r\n", b"")


def test_starttls_is_used_when_offered(relay: Relay, redis_server: RedisServer, mx_port: int) -> None:
    handler = TlsRecordingHandler()
    peer = Peer(handler, HOSTS["wire.test"], mx_port, tls_context=untrusted_tls_context("mx.wire.test"))
    try:
        relay.start_delivery(**FAST, SMARTHOST_DELIVERY_TLS="required")
        put(redis_server.url, "alice@sender.test", ["bob@wire.test"])
        wait_until(lambda: len(handler.messages) == 1, timeout=30, what="delivery over TLS")
    finally:
        peer.stop()
    assert handler.over_tls == [True]


def test_a_failed_tls_handshake_falls_back_to_clear_text_when_opportunistic(
    relay: Relay, redis_server: RedisServer, mx_port: int
) -> None:
    handler = TlsRecordingHandler()
    # Offers STARTTLS but demands a client certificate the relay does not have.
    context = untrusted_tls_context("mx.wire.test")
    context.verify_mode = ssl.CERT_REQUIRED
    peer = Peer(handler, HOSTS["wire.test"], mx_port, tls_context=context)
    try:
        relay.start_delivery(**FAST)
        put(redis_server.url, "alice@sender.test", ["bob@wire.test"])
        wait_until(lambda: len(handler.messages) == 1, timeout=30, what="delivery in clear after the failed handshake")
    finally:
        peer.stop()
    assert handler.over_tls == [False]


def test_required_tls_refuses_a_peer_without_starttls(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    plain = sinks("example.test")
    relay.start_delivery(**FAST, SMARTHOST_DELIVERY_TLS="required", SMARTHOST_MAX_QUEUE_LIFETIME="2s")

    queue_id = put(redis_server.url, "alice@sender.test", ["bob@example.test"])

    # The DSN cannot leave either (no peer here offers STARTTLS): read it from the queue.
    client = redis_server.client()
    try:
        wait_until(lambda: not client.exists(f"smarthost:msg:{queue_id}"), timeout=30, what="the bounce")
        queued: Any = client.zrange("smarthost:queue:index", 0, -1)
        (dsn_id,) = queued
        body = client.hget(f"smarthost:msg:{dsn_id.decode()}", "body")
    finally:
        client.close()
    assert plain.messages == []
    assert isinstance(body, bytes)
    _, (_, status), _ = report_parts(parse(body))
    assert "TLS is required, but was not offered by mx.example.test" in status["Diagnostic-Code"]


def test_bad_settings_stop_the_worker_naming_the_variable(redis_server: RedisServer) -> None:
    for name, value in [
        ("SMARTHOST_DELIVERY_TLS", "maybe"),
        ("SMARTHOST_DELAY_WARNING", "soon"),
        ("SMARTHOST_DEAD_LETTER_AFTER", "1"),
    ]:
        result = subprocess.run(
            [str(BIN / "smarthost-delivery")],
            env={"SMARTHOST_REDIS_URL": redis_server.url, name: value, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert f"configuration error: {name}:" in result.stderr


def recorded(recorder: WireRecorder, count: int) -> Callable[[], bool]:
    return lambda: len(recorder.data) == count


def test_one_warm_connection_carries_consecutive_messages(
    relay: Relay, redis_server: RedisServer, mx_port: int
) -> None:
    recorder = WireRecorder(HOSTS["wire.test"], mx_port)
    try:
        relay.start_delivery(**FAST, SMARTHOST_DELIVERY_CONNECTION_IDLE="30s")
        for n in range(1, 4):
            put(redis_server.url, "alice@sender.test", ["bob@wire.test"])
            wait_until(recorded(recorder, n), timeout=30, what=f"message {n}")
    finally:
        recorder.stop()
    assert recorder.connections == 1


def test_a_message_above_the_destination_size_limit_bounces_without_data(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer, mx_port: int
) -> None:
    recorder = WireRecorder(HOSTS["wire.test"], mx_port)
    sender = sinks("sender.test")
    try:
        relay.start_delivery(**FAST)
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100
        put(redis_server.url, "alice@sender.test", ["bob@wire.test"], big)
        wait_until(lambda: len(sender.messages) == 1, timeout=30, what="DSN for the oversized message")
    finally:
        recorder.stop()
    assert recorder.data == []
    _, (_, status), _ = report_parts(parse(sender.messages[0].data))
    assert status["Status"] == "5.3.4"
    assert "exceeds the limit of 1000000" in status["Diagnostic-Code"]
