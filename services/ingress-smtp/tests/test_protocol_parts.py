import asyncio
from ipaddress import ip_network

import pytest

from smarthost_common.memory_budget import MemoryBudget
from smarthost_ingress.auth import AuthThrottle
from smarthost_ingress.limits import ConnectionLimits
from smarthost_ingress.proxy import HeaderSniffer, ProxyTrust
from smarthost_ingress.replies import normalized


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ('500 Error: command "X\x00Y" not recognized', '500 5.5.2 Error: command "X?Y" not recognized'),
        ("553 5.1.3 already coded", "553 5.1.3 already coded"),
        ("250-PIPELINING", "250-PIPELINING"),
        ("220 Ready to start TLS", "220 Ready to start TLS"),
        ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
        ("221 Bye", "221 2.0.0 Bye"),
    ],
)
def test_replies_are_printable_and_coded(line: str, expected: str) -> None:
    assert normalized(line) == expected


def test_connection_limits() -> None:
    limits = ConnectionLimits(total=2, per_ip=1)
    assert limits.open() and limits.open() and not limits.open()
    assert limits.admit("192.0.2.1") and not limits.admit("192.0.2.1") and limits.admit("192.0.2.2")
    limits.leave("192.0.2.1")
    limits.close()
    assert limits.admit("192.0.2.1") and limits.open()


def test_memory_budget_waits_for_released_memory() -> None:
    async def scenario() -> list[bool]:
        budget = MemoryBudget(100)
        first = await budget.reserve(80, wait=0)
        assert first is not None
        assert await budget.reserve(30, wait=0) is None
        waiting = asyncio.create_task(budget.reserve(30, wait=5))
        await asyncio.sleep(0.05)
        first.release()
        second = await waiting
        assert second is not None
        return [second.grow(70), second.grow(1), budget.used == 100]

    assert asyncio.run(scenario()) == [True, False, True]


def test_proxy_trust_and_untrusted_header_sniffing() -> None:
    trust = ProxyTrust([ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")])
    assert trust.trusted("10.1.2.3") and trust.trusted("::ffff:10.1.2.3") and trust.trusted("2001:db8::1")
    assert not trust.trusted("192.0.2.1") and not trust.trusted("unix")

    v1 = HeaderSniffer()
    assert v1.proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
    v2 = HeaderSniffer()
    assert [v2.proxy_header(line) for line in (b"\r\n", b"\r\n", b"\x00\r\n", b"QUIT\n")] == [False] * 3 + [True]
    plain = HeaderSniffer()
    assert not plain.proxy_header(b"\r\n") and not plain.proxy_header(b"EHLO x\r\n")
    assert not plain.proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")  # only at the start


def test_auth_throttle_slows_then_blocks() -> None:
    throttle = AuthThrottle(max_failures=3, window=60, delay=1.0)
    assert [throttle.failed("192.0.2.1") for _ in range(3)] == [1.0, 2.0, 3.0]
    assert throttle.blocked("192.0.2.1") and not throttle.blocked("192.0.2.2")
    forgetful = AuthThrottle(max_failures=1, window=0.01, delay=0)
    forgetful.failed("192.0.2.1")
    assert forgetful.blocked("192.0.2.1")
    asyncio.run(asyncio.sleep(0.02))
    assert not forgetful.blocked("192.0.2.1")
