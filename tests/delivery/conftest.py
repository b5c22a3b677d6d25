"""Delivery fixtures: the standard zone plus the MX setups delivery must handle (see delivery.helpers.ZONE)."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dns_server import DnsServer
from support.ports import free_port
from support.processes import ProcessGroup
from support.sinks import Reply, SmtpSink

from delivery.helpers import HOSTS, ZONE


@pytest.fixture
def dns_server(processes: ProcessGroup, tmp_path: Path) -> DnsServer:
    return DnsServer(processes, tmp_path, ZONE, free_port())


@pytest.fixture
def mx_port() -> int:
    return free_port(*HOSTS.values())


@pytest.fixture
def sink_at(mx_port: int) -> Iterator[Callable[..., SmtpSink]]:
    """An SMTP sink for any destination of ZONE (by domain name)."""
    started: list[SmtpSink] = []

    def start(domain: str, reply: Reply | None = None) -> SmtpSink:
        sink = SmtpSink(HOSTS[domain], mx_port, reply)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()
