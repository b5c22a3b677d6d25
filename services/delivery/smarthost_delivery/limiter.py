"""Open transactions per destination domain, counted in Redis so the limit holds across all pods.

Each holder has a lease in a sorted set scored by its expiry (Redis clock),
renewed while it works; a worker killed mid-transaction frees its slot when
its lease runs out instead of holding it forever.
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

RENEW = """#!lua flags=allow-oom
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
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

    @asynccontextmanager
    async def slot(self, domain: str) -> AsyncIterator[None]:
        key = limit_key(domain)
        token = secrets.token_hex(8)
        await self._take(key, token)
        renewer = asyncio.create_task(self._keep(key, token))
        try:
            yield
        finally:
            renewer.cancel()
            # The transaction's outcome matters more than the slot: a lease
            # that cannot be released here runs out by itself.
            with suppress(asyncio.CancelledError, RedisError, OSError):
                await renewer
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

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            await self._renew(keys=[key], args=[token, LEASE_MS])
