"""The policy's part of the reputation breaker (smarthost_common.reputation).

- It refuses new mail of a suspended customer (from its own policy) and of a
  held one: at CheckConnection from a copy of the held customers refreshed
  about once a second (a TEMPFAIL is never reused by the ingress), and
  exactly at the end of DATA, in the rate limit's script.
- It records its own recipient rejections as bounces, beside the decision
  (best effort: the answer is already decided), and may hold the customer.
- It publishes every customer's settings and the suspended set to Redis on
  each (re)load, and again now and then (a Redis that restarted empty), so
  delivery parks a held or suspended customer's mail without the policy file.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_common import reputation
from smarthost_common.best_effort import BestEffort
from smarthost_policy import verdicts
from smarthost_policy.customers import Match
from smarthost_policy.policy_file import PolicyFile

log = logging.getLogger("smarthost.policy")

REFRESH_EVERY = 1.0
# A Redis that lost its data gets the settings back within this.
REPUBLISH_EVERY = 60.0


@dataclass(frozen=True)
class BreakerSettings:
    """What delivery needs of the policy: each customer's settings (as the scripts read them), who is suspended."""

    settings: dict[str, str] = field(default_factory=dict)
    suspended: frozenset[str] = frozenset()

    @classmethod
    def of(cls, policy: PolicyFile) -> "BreakerSettings":
        return cls(
            {customer.name: customer.limits(policy.defaults).reputation.text for customer in policy.customers},
            frozenset(customer.name for customer in policy.customers if customer.suspended),
        )


class Breaker:
    def __init__(self, redis: Redis, settings: Callable[[], BreakerSettings]) -> None:
        self._redis = redis
        self._settings = settings
        self._held: dict[str, str] = {}
        self._writes = BestEffort("reputation outcomes")

    def refusal(self, match: Match) -> pb.Verdict | None:
        """The 451 for a suspended or held customer, from what this replica knows now."""
        if match.suspended:
            return verdicts.suspended(match.customer)
        reason = self._held.get(match.customer)
        return None if reason is None else verdicts.held(match.customer, reason)

    def bounced(self, match: Match) -> None:
        """One recipient the policy rejected counts as a bounce in the customer's window."""
        settings = match.limits.reputation.text

        async def write() -> None:
            await reputation.record_outcomes(self._redis, match.customer, 0, 1, settings)

        self._writes.run(write)

    async def run(self) -> None:
        published: BreakerSettings | None = None
        last_published = 0.0
        while True:
            try:
                held = await reputation.held_customers(self._redis)
                self._held = {name: hold.reason for name, hold in held.items()}
                current = self._settings()
                if current is not published or time.monotonic() - last_published >= REPUBLISH_EVERY:
                    await reputation.publish(self._redis, current.settings, set(current.suspended))
                    published, last_published = current, time.monotonic()
            except Exception as exc:
                # The last known holds stay in force (the end of DATA checks Redis itself); tried again next time.
                log.warning("reputation state not refreshed", extra={"error": repr(exc)})
            await asyncio.sleep(REFRESH_EVERY)

    async def drain(self) -> None:
        await self._writes.drain()
