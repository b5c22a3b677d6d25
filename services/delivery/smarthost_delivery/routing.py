"""Which addresses delivery may connect to, whatever an MX record says."""

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address


class AddressPolicy:
    def __init__(self, allowed: Sequence[IPv4Network | IPv6Network]) -> None:
        self._allowed = allowed

    def permits(self, address: str) -> bool:
        """Only the public internet, plus the ranges an operator allowed.

        An MX can point at loopback, RFC 1918 or cluster addresses; following
        it would let any sender reach the provider's internal services.
        """
        ip = ip_address(address)
        if any(ip.version == network.version and ip in network for network in self._allowed):
            return True
        return ip.is_global
