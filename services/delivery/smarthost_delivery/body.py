"""A queued message's bytes during one attempt, read only when needed and held within a memory budget.

The size and 8-bit flag come with the record. A first attempt gets a small
memory-tier body with the record too (one round trip: it is almost always
sent); otherwise the bytes are read (from Redis or from the spool) only when
a transaction reaches DATA, a DSN needs the headers, or the body moves to
the spool, and once per attempt. A retry of a destination that refuses
connections reads no body at all. What
the worker's transactions hold together is bounded by
SMARTHOST_DELIVERY_MEMORY_LIMIT, so hundreds of messages can be in flight.
"""

import asyncio
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from smarthost_common.memory_budget import MemoryBudget, Reservation
from smarthost_common.queue import StoredBody
from smarthost_common.spool import Spool, SpoolError


class BodyUnavailable(Exception):
    """The bytes cannot be had now (tier unreachable, memory budget taken, message gone): try later."""


class MessageBody:
    def __init__(
        self,
        queue_id: str,
        stored: StoredBody,
        read_memory: Callable[[], Awaitable[bytes | None]],
        spool: Spool | None,
        budget: MemoryBudget,
        wait: float,
    ) -> None:
        self._queue_id = queue_id
        self._stored = stored
        self._read_memory = read_memory
        self._spool = spool
        self._budget = budget
        self._wait = wait
        self._data: bytes | None = None
        self._reservation: Reservation | None = None
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return self._stored.size

    @property
    def eight_bit(self) -> bool:
        return self._stored.eight_bit

    @property
    def held(self) -> bytes | None:
        """The bytes, when they are in memory already."""
        return self._data

    async def keep(self, data: bytes) -> None:
        """Bytes read with the record: held if the budget has room for them now, else read again when needed."""
        reservation = await self._budget.reserve(len(data), 0)
        if reservation is not None:
            self._reservation, self._data = reservation, data

    async def read(self) -> bytes:
        async with self._lock:
            if self._data is None:
                self._reservation = self._reservation or await self._budget.reserve(self.size, self._wait)
                if self._reservation is None:
                    raise BodyUnavailable("the delivery memory budget stayed taken")
                self._data = await self._load()
            return self._data

    def release(self) -> None:
        """The attempt is over: the bytes and their share of the budget go."""
        self._data = None
        if self._reservation is not None:
            self._reservation.release()
            self._reservation = None

    async def _load(self) -> bytes:
        try:
            if not self._stored.spooled:
                data = await self._read_memory()
            elif self._spool is None:
                raise BodyUnavailable("the body is in the disk tier, but SMARTHOST_SPOOL_URL is not set")
            else:
                data = await self._spool.load(self._queue_id)
        except (SpoolError, RedisError, OSError) as exc:
            raise BodyUnavailable(str(exc) or exc.__class__.__name__) from exc
        if data is None:
            raise BodyUnavailable(f"no body for {self._queue_id} any more")
        return data
