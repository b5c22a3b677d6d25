"""Which customer a client IP belongs to, and the limits that apply to it."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_policy.networks import NetworkTable, parse_client_ip
from smarthost_policy.policy_file import Customer, Limits, PolicyFile


@dataclass(frozen=True)
class Match:
    customer: str
    limits: Limits
    # The customer's DKIM keys by From: domain, as CheckMessage hands them to the ingress.
    dkim: Mapping[str, tuple[pb.DkimKey, ...]] = field(default_factory=dict)
    suspended: bool = False

    @classmethod
    def of(cls, customer: Customer, defaults: Limits) -> "Match":
        keys: dict[str, tuple[pb.DkimKey, ...]] = {}
        for key in customer.dkim:
            signing = pb.DkimKey(domain=key.domain, selector=key.selector, private_key=key.private_key)
            keys[key.domain] = (*keys.get(key.domain, ()), signing)
        return cls(customer.name, customer.limits(defaults), keys, customer.suspended)


class CustomerIndex:
    """Client IP to customer, most specific network first."""

    def __init__(self, policy: PolicyFile) -> None:
        self.customers = len(policy.customers)
        self._networks = NetworkTable(
            (network, Match.of(customer, policy.defaults))
            for customer in policy.customers
            for network in customer.networks
        )

    def lookup(self, client_ip: str) -> Match | None:
        address = parse_client_ip(client_ip)
        return None if address is None else self._networks.lookup(address)
