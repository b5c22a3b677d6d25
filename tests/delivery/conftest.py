"""Delivery tests: the standard zone plus the MX setups delivery must handle (see delivery.helpers.ZONE)."""

import pytest

from delivery.helpers import HOSTS, ZONE


@pytest.fixture
def dns_zone() -> list[str]:
    return ZONE


@pytest.fixture
def mx_hosts() -> dict[str, str]:
    return HOSTS
