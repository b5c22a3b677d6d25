"""Longest-prefix match of a client address against many CIDR networks.

One hash table per prefix length in use: a lookup costs at most one dict
probe per distinct prefix length (33 for IPv4, 129 for IPv6), however many
networks there are, where a scan would cost one comparison per network.
"""

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Generic, TypeVar

T = TypeVar("T")

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# ::ffff:0:0/96, where an IPv4 client on a dual-stack socket shows up.
_MAPPED = IPv6Network("::ffff:0:0/96")


# Each call parses its client's address twice (customer, rate window), and a
# customer host sends many messages: parsing costs more than a cache hit.
@lru_cache(maxsize=4096)
def parse_client_ip(text: str) -> Address | None:
    """The client's address, an IPv4-mapped IPv6 address as the IPv4 address it is."""
    try:
        address: Address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def canonical_network(network: Network) -> Network:
    """A network written as IPv4-mapped IPv6 (::ffff:10.0.0.0/104) as the IPv4 network it covers."""
    if isinstance(network, IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return IPv4Network((mapped, network.prefixlen - 96))
    return network


class NetworkTable(Generic[T]):
    """Networks to values; the most specific network containing an address wins.

    When the same network is given twice the first value is kept.
    """

    def __init__(self, entries: Iterable[tuple[Network, T]]) -> None:
        tables: dict[tuple[int, int], dict[int, T]] = {}
        for network, value in entries:
            network = canonical_network(network)
            table = tables.setdefault((network.version, network.prefixlen), {})
            table.setdefault(int(network.network_address), value)
        self._size = sum(len(table) for table in tables.values())
        # Per IP version: (netmask, table), longest prefix first.
        self._by_version: dict[int, list[tuple[int, dict[int, T]]]] = {4: [], 6: []}
        for (version, prefixlen), table in sorted(tables.items(), key=lambda item: -item[0][1]):
            bits = 32 if version == 4 else 128
            mask = ((1 << prefixlen) - 1) << (bits - prefixlen)
            self._by_version[version].append((mask, table))

    def __len__(self) -> int:
        return self._size

    def lookup(self, address: Address) -> T | None:
        value = int(address)
        for mask, table in self._by_version[address.version]:
            found = table.get(value & mask)
            if found is not None:
                return found
        return None
