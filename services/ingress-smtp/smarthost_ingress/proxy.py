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


def looks_like_proxy_header(first_line: bytes) -> bool:
    """Whether a client's first line is the start of a PROXY v1 or v2 header."""
    return first_line.startswith(b"PROXY ") or V2_SIGNATURE.startswith(first_line)
