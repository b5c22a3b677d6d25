"""Which customer a client IP belongs to, and the limits that apply to it."""

from dataclasses import dataclass

from smarthost_policy.networks import NetworkTable, parse_client_ip
from smarthost_policy.policy_file import Limits, PolicyFile


@dataclass(frozen=True)
class Match:
    customer: str
    limits: Limits
    suspended: bool = False


class CustomerIndex:
    """Client IP to customer, most specific network first."""

    def __init__(self, policy: PolicyFile) -> None:
        self.customers = len(policy.customers)
        self._networks = NetworkTable(
            (network, Match(customer.name, customer.limits(policy.defaults), customer.suspended))
            for customer in policy.customers
            for network in customer.networks
        )

    def lookup(self, client_ip: str) -> Match | None:
        address = parse_client_ip(client_ip)
        return None if address is None else self._networks.lookup(address)
