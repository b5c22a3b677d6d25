from ipaddress import ip_network

import pytest

from smarthost_delivery.retry import next_wait
from smarthost_delivery.routing import AddressPolicy


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fd00::1",
        "100.64.0.1",
    ],
)
def test_internal_addresses_are_never_delivered_to(address: str) -> None:
    assert not AddressPolicy([]).permits(address)


def test_public_addresses_and_allowed_ranges_are() -> None:
    policy = AddressPolicy([ip_network("127.0.0.0/8")])
    assert policy.permits("8.8.8.8")
    assert policy.permits("2a00:1450::1")
    assert policy.permits("127.0.0.2")
    assert not policy.permits("10.0.0.1")


def test_retry_schedule_repeats_its_last_wait() -> None:
    schedule = [300.0, 600.0, 1200.0]
    assert [next_wait(schedule, n) for n in range(1, 6)] == [300, 600, 1200, 1200, 1200]
