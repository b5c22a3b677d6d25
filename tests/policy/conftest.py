"""Fixtures for the policy's tests: a DNS zone with every routability case, the relay on it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dns_responder import DnsResponder
from support.dns_server import DnsServer
from support.policy_zone import policy_zone
from support.ports import free_port
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Relay

POLICY = """
customers:
  - name: loopback
    networks: [127.0.0.1/32]
"""


@pytest.fixture
def failing_upstreams() -> Iterator[tuple[DnsResponder, DnsResponder]]:
    """An upstream that answers SERVFAIL and one that never answers."""
    servfail, silent = DnsResponder(servfail=True), DnsResponder(servfail=False)
    yield servfail, silent
    servfail.stop()
    silent.stop()


@pytest.fixture
def policy_dns(
    processes: ProcessGroup, tmp_path: Path, failing_upstreams: tuple[DnsResponder, DnsResponder]
) -> DnsServer:
    servfail, silent = failing_upstreams
    return DnsServer(processes, tmp_path, [*policy_zone(servfail.port, silent.port), "log-queries"], free_port())


@pytest.fixture
def policy_relay(processes: ProcessGroup, tmp_path: Path, redis_server: RedisServer, policy_dns: DnsServer) -> Relay:
    """The services on the policy zone; tests write their own policy into `policy_file`."""
    return Relay(
        processes, tmp_path, redis_url=redis_server.url, dns=policy_dns.address, delivery_port=25, policy=POLICY
    )
