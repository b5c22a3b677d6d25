"""Free loopback ports, and waiting for a listener to come up."""

import socket
import time

# Ports this process handed out: the kernel may offer a port again once its
# probe socket is closed, before the process it was meant for has bound it.
_given: set[int] = set()


def free_port(*hosts: str) -> int:
    """A port free for TCP and UDP on every one of `hosts` (default 127.0.0.1), never one given before.

    UDP too, because the same helper picks ports for DNS servers.
    """
    first, *rest = hosts or ("127.0.0.1",)
    for _ in range(100):
        with socket.socket(_family(first)) as probe:
            probe.bind((first, 0))
            port = int(probe.getsockname()[1])
        if (
            port not in _given
            and _bindable(first, port, socket.SOCK_DGRAM)
            and all(_bindable(host, port, kind) for host in rest for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM))
        ):
            _given.add(port)
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive ports free for TCP and UDP on `host`, none given before, all now given."""
    for _ in range(100):
        base = free_port(host)
        following = range(base + 1, base + count)
        if all(
            port not in _given and _bindable(host, port, kind)
            for port in following
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)
        ):
            _given.update(following)
            return base
    raise RuntimeError(f"no {count} consecutive ports free on {host}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(_family(host), kind) as probe:
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
