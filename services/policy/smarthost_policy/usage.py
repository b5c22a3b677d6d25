"""Per-customer counters in Redis (see smarthost_common.customer_stats), written beside the decision.

The verdict is already decided when these are written, and they are written
best-effort: a slow or failing Redis changes no SMTP answer. Messages the
rate limit accepts or refuses are counted by its own script instead.
"""

from redis.asyncio import Redis

from smarthost_common.best_effort import BestEffort
from smarthost_common.customer_stats import add_counts


class CustomerUsage:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._writes = BestEffort("customer usage")

    def record(self, customer: str, counts: dict[str, int]) -> None:
        """Add `counts` to `customer`'s hour."""

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                add_counts(pipe, customer, counts)
                await pipe.execute()

        self._writes.run(write)

    async def drain(self) -> None:
        await self._writes.drain()
