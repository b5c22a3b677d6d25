"""The `helm test` pod checks the banner and that a stranger is refused.

Its script runs here against two local SMTP servers: a relay that refuses
strangers (the test passes) and an open relay (the test fails).
"""

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from support.chart import Obj, Rendered


class Refusing:
    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        return "554 5.7.1 Relay access denied: not a customer network"


class OpenRelay:
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        return "250 OK"


def _serve(handler: object) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def refusing_relay() -> Iterator[int]:
    yield from _serve(Refusing())


@pytest.fixture
def open_relay() -> Iterator[int]:
    yield from _serve(OpenRelay())


@pytest.fixture
def hook(render_case: Callable[[str], Rendered]) -> Obj:
    (pod,) = [obj for obj in render_case("default").of_kind("Pod") if Rendered.is_hook(obj)]
    return pod


def _run(hook: Obj, port: int) -> subprocess.CompletedProcess[str]:
    python, flag, script, _host, _port = hook["spec"]["containers"][0]["command"]
    assert (python, flag) == ("python", "-c")
    command = [sys.executable, "-c", script, "127.0.0.1", str(port)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_hook_targets_the_relay_service(hook: Obj, render_case: Callable[[str], Rendered]) -> None:
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = render_case("default").get("Service", "ingress")
    assert hook["spec"]["containers"][0]["command"][3:] == [service["metadata"]["name"], "25"]


def test_hook_passes_when_strangers_are_refused(hook: Obj, refusing_relay: int) -> None:
    result = _run(hook, refusing_relay)
    assert result.returncode == 0, result.stderr
    assert "banner: 220" in result.stdout


def test_hook_fails_on_an_open_relay(hook: Obj, open_relay: int) -> None:
    result = _run(hook, open_relay)
    assert result.returncode != 0
    assert "not refused" in result.stderr
