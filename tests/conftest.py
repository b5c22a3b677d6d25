"""Fixtures that start real components: Redis, DNS, SMTP peers, the relay."""

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from support.dns_server import DnsServer
from support.ports import free_port
from support.postgres_server import PostgresServer
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import Reply, SmtpSink
from support.standard import DEFAULT_POLICY, MX_HOSTS, STANDARD_ZONE


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failure so `processes` can print the services' logs."""
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
        if request.node.stash.get(FAILED, False):
            print(group.logs())


@pytest.fixture
def redis_server(processes: ProcessGroup, tmp_path: Path) -> RedisServer:
    return RedisServer(processes, tmp_path / "redis")


@pytest.fixture
def postgres(processes: ProcessGroup) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster: the queue's disk tier."""
    server = PostgresServer(processes)
    yield server
    server.remove()


@pytest.fixture
def dns_zone() -> list[str]:
    """The records the test DNS server serves; a test folder may override it."""
    return STANDARD_ZONE


@pytest.fixture
def mx_hosts() -> dict[str, str]:
    """Destination name to the loopback address of its MX; overridden with `dns_zone`."""
    return MX_HOSTS


@pytest.fixture
def dns_server(processes: ProcessGroup, tmp_path: Path, dns_zone: list[str]) -> DnsServer:
    return DnsServer(processes, tmp_path, dns_zone, free_port())


@pytest.fixture
def mx_port(mx_hosts: dict[str, str]) -> int:
    """The one port every destination MX listens on (SMARTHOST_DELIVERY_PORT)."""
    return free_port(*mx_hosts.values())


@pytest.fixture
def sinks(mx_port: int, mx_hosts: dict[str, str]) -> Iterator[Callable[..., SmtpSink]]:
    """Starts an SMTP sink at the MX address of a destination, by name."""
    started: list[SmtpSink] = []

    def start(domain: str, reply: Reply | None = None) -> SmtpSink:
        sink = SmtpSink(mx_hosts[domain], mx_port, reply)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def relay(
    processes: ProcessGroup, tmp_path: Path, redis_server: RedisServer, dns_server: DnsServer, mx_port: int
) -> Relay:
    """The services' environment; tests start the processes they need."""
    return Relay(
        processes,
        tmp_path,
        redis_url=redis_server.url,
        dns=dns_server.address,
        delivery_port=mx_port,
        policy=DEFAULT_POLICY,
    )
