"""Open transactions per destination domain, counted in Redis so the limit holds across all pods.

Each holder has a lease in a sorted set scored by its expiry (Redis clock),
renewed while it works (all of a worker's leases in one step); a worker
killed mid-transaction frees its slot when its lease runs out instead of
holding it forever. A lease whose transaction ended waits a moment (HOLD)
for the worker's next transaction to the same domain before it is given
back: under load a worker's transactions to a busy destination take and
give back no lease in Redis, as Postfix's queue manager counts them in its
own memory; idle, the slot is free again a fifth of a second later.
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
# Seconds an ended transaction's lease waits for the worker's next transaction to its domain.
HOLD = 0.2


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
        # Leases whose transaction ended, by key, waiting for the next one (HOLD).
        self._idle: dict[str, list[str]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def slot(self, domain: str) -> AsyncIterator[None]:
        key = limit_key(domain)
        token = self._reuse(key) or await self._take(key)
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep())
        try:
            yield
        finally:
            self._idle.setdefault(key, []).append(token)
            asyncio.get_running_loop().call_later(HOLD, self._let_go, key, token)

    async def close(self) -> None:
        """Give back every idle lease (the worker stops), so other workers need not wait for them to run out."""
        if self._keeper is not None:
            self._keeper.cancel()
        idle, self._idle = self._idle, {}
        for key, tokens in idle.items():
            for token in tokens:
                self._release(key, token)
        if self._releases:
            await asyncio.wait(self._releases)

    def _reuse(self, key: str) -> str | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        token = idle.pop()
        if not idle:
            del self._idle[key]
        return token

    def _let_go(self, key: str, token: str) -> None:
        idle = self._idle.get(key)
        if idle is None or token not in idle:
            return  # taken by a transaction meanwhile
        idle.remove(token)
        if not idle:
            del self._idle[key]
        self._release(key, token)

    def _release(self, key: str, token: str) -> None:
        del self._held[token]
        task = asyncio.create_task(self._zrem(key, token))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _zrem(self, key: str, token: str) -> None:
        # A lease that cannot be given back here runs out by itself.
        with suppress(RedisError, OSError):
            await self._redis.zrem(key, token)

    async def _take(self, key: str) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        pause = 0.05
        waited = False
        token = secrets.token_hex(8)
        while not await self._acquire(keys=[key], args=[token, self._limit, LEASE_MS]):
            if not waited:
                DESTINATION_WAITS.inc()
                waited = True
            if loop.time() + pause > deadline:
                raise DestinationBusy
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
            # One of this worker's own transactions to the domain may have ended meanwhile.
            if reused := self._reuse(key):
                return reused
        self._held[token] = key
        return token

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
