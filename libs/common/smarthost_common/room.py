"""How much room Redis has left, read in the background for decisions on the hot path.

The ingress asks it before each message (is there a tier that can take this
many bytes?) and delivery before each deferral (may the trace grow?); both
must not cost a round trip per message, so the figures are refreshed on an
interval and may be that old.
"""

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from smarthost_common.queue import TIERS

log = logging.getLogger("smarthost.queue")

# Past this share of Redis's maxmemory, new mail is refused (452 4.3.1) and
# delivery stops writing deferral traces: the rest is kept for settling.
RESERVE_FROM = 0.9
REFRESH_EVERY = 1.0


class RedisRoom:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.memory_tier_bytes = 0
        self.used_memory = 0
        # 0 when Redis has no maxmemory.
        self.max_memory = 0

    @property
    def tight(self) -> bool:
        """Redis is near its maxmemory: keep what is left for settling queued mail."""
        return bool(self.max_memory) and self.used_memory >= self.max_memory * RESERVE_FROM

    async def refresh(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(TIERS, "memory_bytes")
            pipe.info("memory")
            memory_bytes, info = await pipe.execute()
        self.memory_tier_bytes = int(memory_bytes or 0)
        self.used_memory = int(info.get("used_memory", 0))
        self.max_memory = int(info.get("maxmemory", 0))

    async def run(self) -> None:
        """Refreshes until cancelled; a failed read keeps the last figures (Redis errors surface elsewhere)."""
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                log.debug("redis room not read", extra={"error": str(exc)})
            await asyncio.sleep(REFRESH_EVERY)
