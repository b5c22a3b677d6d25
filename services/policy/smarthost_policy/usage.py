"""Per-customer counters in Redis (see smarthost_common.customer_stats), written beside the decision.

The verdict is already decided when these are written, and they are written
best-effort: a slow or failing Redis changes no SMTP answer.
"""

from redis.asyncio import Redis

from smarthost_common.best_effort import BestEffort
from smarthost_common.customer_stats import add_counts, add_sender
from smarthost_policy.policy_file import RateLimit
from smarthost_policy.rate_limit import window_ms


class CustomerUsage:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._writes = BestEffort("customer usage")

    def record(
        self, customer: str, counts: dict[str, int], window_key: str = "", limit: RateLimit | None = None
    ) -> None:
        """Add `counts` to `customer`'s hour; with `window_key`, note that this rate window is theirs."""

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                add_counts(pipe, customer, counts)
                if window_key and limit is not None:
                    add_sender(pipe, customer, window_key, limit.messages, window_ms(limit))
                await pipe.execute()

        self._writes.run(write)

    async def drain(self) -> None:
        await self._writes.drain()
