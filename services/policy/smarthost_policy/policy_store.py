"""The policy in force: the file's defaults and customers, plus RelayCustomer objects.

Each source replaces its own part and the customer index (and the submission
users) are rebuilt whole and swapped in one assignment. A request reads the index once, so a reload
never changes the rules in the middle of a check and never drops a request.
"""

import logging
from collections.abc import Mapping

from prometheus_client import Gauge

from smarthost_policy.auth import Users
from smarthost_policy.breaker import BreakerSettings
from smarthost_policy.customers import CustomerIndex
from smarthost_policy.policy_file import Customer, PolicyFile

log = logging.getLogger("smarthost.policy")

CUSTOMERS = Gauge("smarthost_policy_customers", "Customers in the policy in force, by source", ["source"])


class PolicyStore:
    def __init__(self, policy: PolicyFile) -> None:
        self._file = policy
        # RelayCustomer objects by "namespace/name".
        self._cluster: dict[str, Customer] = {}
        self.index, self.users = self._build()

    def use_file(self, policy: PolicyFile) -> None:
        self._file = policy
        self.index, self.users = self._build()

    def use_cluster(self, customers: Mapping[str, Customer]) -> None:
        self._cluster = dict(customers)
        self.index, self.users = self._build()

    def _build(self) -> tuple[CustomerIndex, Users]:
        # Sorted, so the same objects give the same index on every replica.
        cluster = [self._cluster[key] for key in sorted(self._cluster)]
        CUSTOMERS.labels(source="file").set(len(self._file.customers))
        CUSTOMERS.labels(source="kubernetes").set(len(cluster))
        policy = self._file.model_copy(update={"customers": [*self._file.customers, *cluster]})
        self.breaker = BreakerSettings.of(policy)
        return CustomerIndex(policy), Users(policy)
