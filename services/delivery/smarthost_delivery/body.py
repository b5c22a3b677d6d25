"""A queued message's bytes during one attempt, from whichever tier holds them.

A body in the spool is read only when a transaction reaches DATA (or a DSN
needs its headers), once per attempt: retrying a destination that refuses
connections costs no read from PostgreSQL.
"""

import asyncio

from smarthost_common.queue import StoredBody
from smarthost_common.spool import Spool, SpoolError


class MessageBody:
    def __init__(self, queue_id: str, stored: StoredBody, spool: Spool | None) -> None:
        self._queue_id = queue_id
        self._stored = stored
        self._spool = spool
        self._data = stored.data
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return self._stored.size

    @property
    def eight_bit(self) -> bool:
        return self._stored.eight_bit

    @property
    def in_memory(self) -> bool:
        return not self._stored.spooled

    async def read(self) -> bytes:
        """The bytes; raises SpoolError when the spool cannot give them now (the message stays queued)."""
        if self._data is not None:
            return self._data
        async with self._lock:
            if self._data is None:
                if self._spool is None:
                    raise SpoolError("the body is in the disk tier, but SMARTHOST_SPOOL_URL is not set")
                data = await self._spool.load(self._queue_id)
                if data is None:
                    raise SpoolError(f"the spool has no body for {self._queue_id}")
                self._data = data
            return self._data
