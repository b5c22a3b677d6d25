"""Fixtures for the ingress tests: one stack per module, the queue emptied per test."""

import ssl
from collections.abc import Iterator

import pytest
from support.ingress_stack import SUBMISSION_PASSWORD, Ingress, IngressStack
from support.processes import ProcessGroup

from smarthost_policy.passwords import hash_password


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngressStack]:
    workdir = tmp_path_factory.mktemp("ingress")
    group = ProcessGroup(workdir)
    failed_before = request.session.testsfailed
    try:
        # A cheaper scrypt cost than production keeps logins fast in tests.
        yield IngressStack(group, workdir, hash_password(SUBMISSION_PASSWORD, n=2**12))
    finally:
        group.stop_all()
        if request.session.testsfailed > failed_before:
            print(group.logs())


@pytest.fixture(scope="module")
def ingress(stack: IngressStack) -> Ingress:
    """The module's shared ingress, with every default limit."""
    return stack.start_ingress()


@pytest.fixture(autouse=True)
def empty_queue(stack: IngressStack) -> None:
    stack.clear()


@pytest.fixture
def client_tls(stack: IngressStack) -> ssl.SSLContext:
    context = ssl.create_default_context()
    stack.ca.configure_trust(context)
    return context
