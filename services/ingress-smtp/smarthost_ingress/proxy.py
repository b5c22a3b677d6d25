"""PROXY protocol v1/v2: the real client address, from trusted load balancers only.

From a trusted peer the header is required (a load balancer that sends it
always sends it); from any other peer a header is an attempt to choose the
client IP the policy sees, and drops the connection.
"""

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiosmtpd.proxy_protocol import V2_SIGNATURE, ProxyData


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text)
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
    if isinstance(address, IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class ProxyTrust:
    def __init__(self, networks: Sequence[IPv4Network | IPv6Network]) -> None:
        self._networks = tuple(networks)

    def trusted(self, peer_ip: str) -> bool:
        if not self._networks:
            return False
        address = _address(peer_ip)
        return address is not None and any(
            address.version == network.version and address in network for network in self._networks
        )


def proxied_client(data: ProxyData, peer_ip: str) -> str | None:
    """The client IP a valid header names; the peer's own for LOCAL/UNKNOWN (health checks).

    None when the header is unusable.
    """
    if not data.valid:
        return None
    if data.src_addr is None:
        return peer_ip
    address = _address(str(data.src_addr))
    return str(address) if address is not None else None


class HeaderSniffer:
    """Spots a PROXY header at the start of a connection from an untrusted peer.

    A v1 header is one line starting `PROXY `; v2's signature reads as the
    lines CRLF, CRLF, NUL CRLF, `QUIT` LF, so the first lines are watched
    until they can no longer be its start.
    """

    def __init__(self) -> None:
        self._head: bytes | None = b""

    def proxy_header(self, line: bytes) -> bool:
        if self._head is None:
            return False
        self._head += line
        if self._head.startswith(b"PROXY ") or self._head.startswith(V2_SIGNATURE):
            return True
        if not V2_SIGNATURE.startswith(self._head):
            self._head = None
        return False
