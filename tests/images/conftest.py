"""The built images (`make images`) run by podman; `make test-images` runs these tests."""

from collections.abc import Iterator

import pytest
from support import podman


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of the containers a test started; removed at teardown, whatever their state."""
    names: list[str] = []
    yield names
    podman.remove(*names)
