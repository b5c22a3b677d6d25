"""Destinations none of whose MX hosts takes a connection, remembered for a while by every worker.

Postfix's "dead destination": once a domain's MX hosts have refused or timed
out FAILURES times in a row, its other messages are deferred at once, without
connecting, until the mark runs out (the first retry wait, at most a minute).
A dead destination's backlog then costs each retry a Redis step, not a
connection attempt, so it cannot crowd out mail to destinations that answer.
One failed connect is not enough: a busy but healthy MX refuses now and
then, and a connection that succeeds wipes the count. The count and the mark
live in Redis for all workers; each worker asks at most once a second per
domain, and the hot path of a healthy destination costs no Redis step at all.
"""

import time
from contextlib import suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError

KEY_PREFIX = "smarthost:down:"
# Connection failures in a row, across workers, before a destination is marked.
FAILURES = 5
# How long a worker believes what it last read of a domain's mark.
RECHECK_EVERY = 1.0
# Domains remembered locally at most; past it the memory starts afresh.
MAX_REMEMBERED = 10_000

# KEYS: failure count, mark; ARGV: failures, hold ms. 1 when the destination is now marked.
_FAILED = """
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[2])
  return 1
end
return 0
"""


def down_key(domain: str) -> str:
    return KEY_PREFIX + domain


def _failures_key(domain: str) -> str:
    return f"smarthost:failures:{domain}"


class DownDestinations:
    def __init__(self, redis: Redis, hold: float) -> None:
        self._redis = redis
        self._hold_ms = max(1, int(hold * 1000))
        # domain -> (down?, when that was read)
        self._seen: dict[str, tuple[bool, float]] = {}
        # Domains this worker saw fail: a success must wipe their count.
        self._failing: set[str] = set()

    async def failed(self, domain: str) -> None:
        """No MX host of `domain` took a connection in this attempt."""
        self._failing.add(domain)
        try:
            marked = await self._redis.eval(
                _FAILED, 2, _failures_key(domain), down_key(domain), FAILURES, self._hold_ms
            )
        except (RedisError, OSError):
            return  # only an optimisation: the next message tries the destination again
        if marked:
            self._remember(domain, True)

    async def reached(self, domain: str) -> None:
        """An MX host of `domain` took a connection: whatever failed before was passing."""
        if domain in self._failing:
            self._failing.discard(domain)
            with suppress(RedisError, OSError):
                await self._redis.delete(_failures_key(domain))

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
            self._failing.clear()
        self._seen[domain] = (down, time.monotonic())
