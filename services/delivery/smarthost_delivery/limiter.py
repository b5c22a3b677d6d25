"""Open transactions per destination domain, counted in Redis so the limit holds across all pods.

Each holder has a lease in a sorted set scored by its expiry (Redis clock),
renewed while it works (all of a worker's leases in one step); a worker
killed mid-transaction frees its slot when its lease runs out instead of
holding it forever.
"""

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError

from smarthost_delivery.metrics import DESTINATION_WAITS

# allow-oom here and below: a lease is a few bytes, and delivery (which frees
# Redis memory) must go on with Redis at its maxmemory.
# KEYS[1] leases; ARGV: token, limit, lease ms. 1 when a slot was taken.
ACQUIRE = """#!lua flags=allow-oom
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS: the leases of each held slot; ARGV: lease ms, then the token of each.
RENEW = """#!lua flags=allow-oom
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now_ms + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""

LEASE_MS = 30_000


class DestinationBusy(Exception):
    """No slot came free within the wait."""


def limit_key(domain: str) -> str:
    return f"smarthost:limit:{domain}"


class DestinationLimiter:
    def __init__(self, redis: Redis, limit: int, wait: float) -> None:
        self._redis = redis
        self._limit = limit
        self._wait = wait
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        # Leases this worker holds, token -> key: one task renews them all, none is started per transaction.
        self._held: dict[str, str] = {}
        self._keeper: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def slot(self, domain: str) -> AsyncIterator[None]:
        key = limit_key(domain)
        token = secrets.token_hex(8)
        await self._take(key, token)
        self._held[token] = key
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep())
        try:
            yield
        finally:
            del self._held[token]
            # The transaction's outcome matters more than the slot: a lease
            # that cannot be released here runs out by itself.
            with suppress(RedisError, OSError):
                await self._redis.zrem(key, token)

    async def _take(self, key: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        pause = 0.05
        waited = False
        while not await self._acquire(keys=[key], args=[token, self._limit, LEASE_MS]):
            if not waited:
                DESTINATION_WAITS.inc()
                waited = True
            if loop.time() + pause > deadline:
                raise DestinationBusy
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _keep(self) -> None:
        """Every lease held is renewed at least every third of a lease, whenever it was taken."""
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            if not self._held:
                continue
            held = list(self._held.items())
            # A renewal that fails is tried again next round, still well within the lease.
            with suppress(RedisError, OSError):
                await self._renew(keys=[key for _, key in held], args=[LEASE_MS, *(token for token, _ in held)])
