"""No single Redis node can lose the queue: WAIT for replicas before the 250, Sentinel failover.

Real redis-server processes as primary and replicas, a real sentinel, the
services configured only by SMARTHOST_*.
"""

import signal
import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from support.dns_server import DnsServer
from support.load import Message, send_all, send_until_accepted
from support.processes import Process, ProcessGroup
from support.redis_sentinel import ReplicatedRedis
from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.standard import UNLIMITED_POLICY
from support.waiting import wait_until


@pytest.fixture
def replicated(processes: ProcessGroup, tmp_path: Path) -> ReplicatedRedis:
    """A primary, two replicas (one is left to confirm after a failover) and a sentinel."""
    redis = ReplicatedRedis(processes, tmp_path, replicas=2, sentinels=1)
    redis.wait_synced()
    return redis


def relay_on(replicated: ReplicatedRedis, processes: ProcessGroup, tmp_path: Path, dns: DnsServer, port: int) -> Relay:
    return Relay(
        processes,
        tmp_path,
        redis_url=replicated.primary.url,
        dns=dns.address,
        delivery_port=port,
        policy=UNLIMITED_POLICY,
    )


def process(server: RedisServer) -> Process:
    assert server.process is not None
    return server.process


def arrived_ids(sink: SmtpSink) -> set[str]:
    return {m.data.split(b"X-Test-Id: ")[1].split(b"\r\n")[0].decode() for m in sink.messages}


def messages(prefix: str, count: int) -> list[Message]:
    return [Message(f"{prefix}-{n}", "alice@sender.test", f"bob{n}@example.test") for n in range(count)]


def test_the_250_waits_for_a_replica_and_without_one_the_message_is_taken_back(
    replicated: ReplicatedRedis, processes: ProcessGroup, tmp_path: Path, dns_server: DnsServer, mx_port: int
) -> None:
    relay = relay_on(replicated, processes, tmp_path, dns_server, mx_port)
    ingress = relay.start_ingress(
        relay.start_policy(), SMARTHOST_QUEUE_MIN_REPLICAS="2", SMARTHOST_QUEUE_REPLICA_WAIT="3s"
    )
    assert send_all("127.0.0.1", ingress.port, messages("confirmed", 3), 2048, 1) == dict.fromkeys(
        [f"confirmed-{n}" for n in range(3)], 250
    )
    for replica in replicated.replicas:
        assert replica.client().zcard("smarthost:queue:index") == 3  # on both replicas before the 250

    process(replicated.replicas[0]).signal(signal.SIGSTOP)  # a replica that stops answering
    try:
        with smtplib.SMTP("127.0.0.1", ingress.port, timeout=30) as client:
            client.ehlo("customer.test")
            client.mail("alice@sender.test")
            client.rcpt("bob@example.test")
            code, text = client.data(b"Subject: not confirmed\r\n\r\nbody\r\n")
        assert (code, text[:5]) == (451, b"4.3.0"), (code, text)
        # Taken back: the primary holds only the three confirmed messages.
        assert replicated.primary.client().zcard("smarthost:queue:index") == 3
    finally:
        process(replicated.replicas[0]).signal(signal.SIGCONT)


def test_a_killed_primary_fails_over_and_every_accepted_message_is_delivered(
    replicated: ReplicatedRedis,
    processes: ProcessGroup,
    tmp_path: Path,
    dns_server: DnsServer,
    mx_port: int,
    sinks: Callable[..., SmtpSink],
) -> None:
    sink = sinks("example.test")
    relay = relay_on(replicated, processes, tmp_path, dns_server, mx_port)
    relay.env["SMARTHOST_REDIS_SENTINELS"] = replicated.sentinel_addresses
    relay.env["SMARTHOST_REDIS_URL"] = "redis://unused:6379/0"  # the sentinels name the primary
    ingress = relay.start_ingress(relay.start_policy(), SMARTHOST_QUEUE_MIN_REPLICAS="1")
    relay.start_delivery(SMARTHOST_RETRY_SCHEDULE="1s", SMARTHOST_HEARTBEAT_TTL="3s")

    # Generous bounds: a failover under a loaded machine takes its sentinel-driven seconds.
    before = send_until_accepted("127.0.0.1", ingress.port, messages("before", 20), 2048, 2, timeout=60)
    old = replicated.primary.port
    process(replicated.primary).popen.kill()
    after = send_until_accepted("127.0.0.1", ingress.port, messages("after", 20), 2048, 2, timeout=150)
    assert replicated.current_primary_port() != old

    wanted = set(before) | set(after)
    wait_until(lambda: arrived_ids(sink) >= wanted, timeout=90, what="every accepted message delivered")
    print(f"\nfailover: {sum(after.values())} 4xx answers while the primary was away, 0 lost")
