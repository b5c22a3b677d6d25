"""The backlog world: the standard zone plus `dead.test`, whose MX (127.0.0.5) is down until a test brings it up."""

import pytest
from support.dns_server import a, mx
from support.standard import MX_HOSTS, STANDARD_ZONE

from backlog.world import DEAD, DEAD_MX


@pytest.fixture
def dns_zone() -> list[str]:
    return [*STANDARD_ZONE, mx(DEAD, f"mx.{DEAD}"), a(f"mx.{DEAD}", DEAD_MX)]


@pytest.fixture
def mx_hosts() -> dict[str, str]:
    return {**MX_HOSTS, DEAD: DEAD_MX}
