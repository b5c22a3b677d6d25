"""The Helm chart rendered offline with the Helm library, once per values case."""

from collections.abc import Callable, Iterator
from functools import cache

import helm_python as helm
import pytest
from support.chart import CASES, CHART, NAMESPACE, RELEASE, Obj, Rendered, parse


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Callable[[Obj], Rendered]:
    """Render with `values` over the defaults (as `helm install -f`)."""

    def _render(values: Obj) -> Rendered:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        return parse(manifests, chart.merge_values(values))

    return _render


@pytest.fixture(scope="session")
def render_case(render: Callable[[Obj], Rendered]) -> Callable[[str], Rendered]:
    return cache(lambda case: render(CASES[case]))


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def rendered(case: str, render_case: Callable[[str], Rendered]) -> Rendered:
    return render_case(case)
