"""Where an accepted message's bytes go before the 250: Redis while it has room, else the disk tier.

Memory is the fast path (one Redis step, nothing else). Past
`SMARTHOST_QUEUE_MEMORY_MAX` bytes of queued bodies in Redis, a body is first
committed to the PostgreSQL spool and only then announced in Redis; the
record always lives in Redis. When neither tier can take a message the client
hears `452 4.3.1` and keeps its copy.
"""

import logging
import time
from contextlib import suppress

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, RedisError
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common.queue import announce, enqueue, enqueue_spooled, withdraw
from smarthost_common.room import RedisRoom
from smarthost_common.spool import Spool, SpoolError
from smarthost_ingress.metrics import STORED, labelled

log = logging.getLogger("smarthost.ingress")

# A parked message becomes due by itself this long after the replica wait ends.
PARK_MARGIN_MS = 5000


class NoStorage(Exception):
    """Neither tier has room for the message: 452 4.3.1."""


class NotReplicated(Exception):
    """The replicas did not confirm the message in time; it was taken back: 451 4.3.0."""


class QueueStorage:
    def __init__(
        self,
        redis: Redis,
        spool: Spool | None,
        memory_max: int,
        room: RedisRoom,
        min_replicas: int = 0,
        replica_wait: float = 1.0,
    ) -> None:
        self._redis = redis
        self._spool = spool
        self._memory_max = memory_max
        self._room = room
        self._min_replicas = min_replicas
        self._replica_wait_ms = int(replica_wait * 1000)

    def has_room(self, size: int) -> bool:
        """Whether a message of `size` bytes can be stored, as far as the last figures tell (no round trip)."""
        if self._room.tight:
            return False
        if self._room.memory_tier_bytes + size <= self._memory_max:
            return True
        return self._spool is not None and self._spool.available

    async def store(self, record: QueuedMessage, content: bytearray, size: int) -> str:
        """Queue the message, on at least `min_replicas` replicas; returns the tier that took its body.

        Raises NoStorage when no tier has room (Redis past its reserve or
        refusing for memory, the memory tier full and no spool to fall back
        on), NotReplicated when the replicas did not confirm it in time (it
        was taken back), RedisError when Redis cannot be reached at all.
        """
        # With replicas to wait for, the message is parked until they confirm it (or, should that
        # step be lost in a failover, until a margin past the wait), so no worker takes it sooner.
        park_ms = int(time.time() * 1000) + self._replica_wait_ms + PARK_MARGIN_MS if self._min_replicas else 0
        tier = await self._store(record, content, size, park_ms)
        if self._min_replicas:
            await self._confirm(record.queue_id, tier)
        return tier

    async def _confirm(self, queue_id: str, tier: str) -> None:
        """WAIT for the replicas; with their word the message goes to delivery, without it it is taken back.

        The message is parked, never lost in between: once the replicas hold it, a failed announce
        only delays it to the end of its park (still a 250); when the wait itself fails, it is taken
        back if Redis lets us, so a 451 is not followed by a delivery.
        """
        try:
            confirmed = int(await self._redis.wait(self._min_replicas, self._replica_wait_ms))
        except (RedisError, OSError) as exc:
            with suppress(RedisError, OSError):
                await self._take_back(queue_id, tier)
            raise NotReplicated(f"the replicas could not be asked: {exc}") from exc
        if confirmed >= self._min_replicas:
            try:
                await announce(self._redis, queue_id)
            except (RedisError, OSError) as exc:
                log.warning("confirmed, announced when its park ends", extra={"queue_id": queue_id, "error": str(exc)})
            return
        if not await self._take_back(queue_id, tier):
            # The wait outlasted the park: the message is in delivery's hands, and stays.
            log.warning("not confirmed by replicas, but already queued for delivery", extra={"queue_id": queue_id})
            return
        raise NotReplicated(f"{confirmed} of {self._min_replicas} replicas confirmed within the wait")

    async def _take_back(self, queue_id: str, tier: str) -> bool:
        if not await withdraw(self._redis, queue_id):
            return False
        if tier == "disk" and self._spool:
            with suppress(SpoolError):
                await self._spool.delete([queue_id])
        return True

    async def _store(self, record: QueuedMessage, content: bytearray, size: int, park_ms: int) -> str:
        if self._room.tight:
            raise NoStorage("redis is near its maxmemory")
        memory_fits = self._room.memory_tier_bytes + len(content) <= self._memory_max
        if self._spool is None or memory_fits:
            try:
                if await enqueue(self._redis, record, content, self._memory_max, park_ms, size=size):
                    labelled(STORED, "memory").inc()
                    return "memory"
            except OutOfMemoryError as exc:
                # Refused at the MULTI's first command or at its EXEC: nothing was written.
                raise NoStorage("redis refused for memory") from exc
        return await self._store_on_disk(record, content, size, park_ms)

    async def _store_on_disk(self, record: QueuedMessage, content: bytearray, size: int, park_ms: int) -> str:
        spool = self._spool
        if spool is None:
            raise NoStorage("the memory tier is at SMARTHOST_QUEUE_MEMORY_MAX and there is no disk tier")
        if not spool.available:
            raise NoStorage("the memory tier is full and the disk tier is down")
        try:
            await spool.store(record.queue_id, content)
        except SpoolError as exc:
            log.error("spool write failed", extra={"queue_id": record.queue_id, "error": str(exc)})
            raise NoStorage("the memory tier is full and the disk tier failed") from exc
        try:
            await enqueue_spooled(self._redis, record, len(content), not content.isascii(), park_ms, size=size)
        except (RedisError, OSError) as exc:
            # Not announced, so not accepted: the row is an orphan; remove it now or the sweep will.
            with suppress(SpoolError):
                await spool.delete([record.queue_id])
            if isinstance(exc, OutOfMemoryError):
                raise NoStorage("redis refused for memory") from exc
            raise
        STORED.labels(tier="disk").inc()
        return "disk"
