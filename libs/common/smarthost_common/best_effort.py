"""Writes that must never slow down or fail mail: run beside it, bounded, errors logged.

Used for observability data in Redis (per-customer counters): the SMTP
answer or the delivery result is already decided; the write runs as its own
task with a deadline, and when too many are pending new ones are dropped
(and logged) rather than queued without bound.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("smarthost.best_effort")


class BestEffort:
    def __init__(self, what: str, timeout: float = 2.0, max_pending: int = 1000) -> None:
        self._what = what
        self._timeout = timeout
        self._max_pending = max_pending
        self._pending: set[asyncio.Task[None]] = set()

    def run(self, write: Callable[[], Awaitable[object]]) -> None:
        if len(self._pending) >= self._max_pending:
            log.warning("write skipped: too many pending", extra={"what": self._what})
            return
        task = asyncio.create_task(self._guarded(write))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for what is pending (on shutdown); each write is bounded by its timeout."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    async def _guarded(self, write: Callable[[], Awaitable[object]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await write()
        except Exception as exc:
            log.warning("write failed", extra={"what": self._what, "error": repr(exc)})
