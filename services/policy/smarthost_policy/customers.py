"""Which customer a client IP belongs to."""

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from smarthost_policy.policy_file import Limits, PolicyFile


@dataclass(frozen=True)
class Match:
    customer: str
    limits: Limits


class CustomerIndex:
    """Client IP to customer, most specific network first."""

    def __init__(self, policy: PolicyFile) -> None:
        entries = [
            (network, Match(customer.name, customer.limits(policy.defaults)))
            for customer in policy.customers
            for network in customer.networks
        ]
        # Longest prefix wins when a customer's network sits inside another's.
        self._entries = sorted(entries, key=lambda entry: entry[0].prefixlen, reverse=True)

    def lookup(self, client_ip: str) -> Match | None:
        try:
            address: IPv4Address | IPv6Address = ip_address(client_ip)
        except ValueError:
            return None
        # An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        if isinstance(address, IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        for network, match in self._entries:
            if address.version == network.version and address in network:
                return match
        return None
