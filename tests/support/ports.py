"""Free loopback ports, and waiting for a listener to come up."""

import socket
import time


def free_port(*hosts: str) -> int:
    """A TCP port free on every one of `hosts` (default 127.0.0.1)."""
    first, *rest = hosts or ("127.0.0.1",)
    for _ in range(100):
        with socket.socket(_family(first)) as probe:
            probe.bind((first, 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(host, port) for host in rest):
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bindable(host: str, port: int) -> bool:
    with socket.socket(_family(host)) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
