"""Destinations none of whose MX hosts took a connection, remembered for a while by every worker.

Postfix's "dead destination": once every MX of a domain refused or timed out,
its other messages are deferred at once, without connecting, until the mark
runs out (the first retry wait, at most a minute). A dead destination's
backlog then costs each retry a Redis step, not a connection attempt, so it
cannot crowd out mail to destinations that answer. The mark lives in Redis
for all workers; each worker asks at most once a second per domain.
"""

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

KEY_PREFIX = "smarthost:down:"
# How long a worker believes what it last read of a domain's mark.
RECHECK_EVERY = 1.0
# Domains remembered locally at most; past it the memory starts afresh.
MAX_REMEMBERED = 10_000


def down_key(domain: str) -> str:
    return KEY_PREFIX + domain


class DownDestinations:
    def __init__(self, redis: Redis, hold: float) -> None:
        self._redis = redis
        self._hold_ms = max(1, int(hold * 1000))
        # domain -> (down?, when that was read)
        self._seen: dict[str, tuple[bool, float]] = {}

    async def mark(self, domain: str) -> None:
        try:
            await self._redis.set(down_key(domain), 1, px=self._hold_ms)
        except (RedisError, OSError):
            return  # only an optimisation: the next message tries the destination again
        self._remember(domain, True)

    async def is_down(self, domain: str) -> bool:
        seen = self._seen.get(domain)
        if seen is not None and time.monotonic() - seen[1] < RECHECK_EVERY:
            return seen[0]
        try:
            down = bool(await self._redis.exists(down_key(domain)))
        except (RedisError, OSError):
            down = False
        self._remember(domain, down)
        return down

    def _remember(self, domain: str, down: bool) -> None:
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        self._seen[domain] = (down, time.monotonic())
