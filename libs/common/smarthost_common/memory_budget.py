"""Bytes of message data a process holds at once, shared by everything that holds some.

The ingress bounds what its DATA transfers buffer; delivery bounds the
bodies its transactions hold. A holder reserves before it reads, waiting a
while when the budget is taken; a reservation never exceeds the whole
budget, so one message larger than it still passes, alone.
"""

import asyncio


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Event()

    async def reserve(self, size: int, wait: float) -> "Reservation | None":
        """`size` bytes (at most the whole budget), waiting up to `wait` seconds for them."""
        size = min(size, self.limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.used + size > self.limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._freed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._freed.wait()
            except TimeoutError:
                return None
        self.used += size
        return Reservation(self, size)

    def _take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def _give(self, size: int) -> None:
        self.used -= size
        self._freed.set()


class Reservation:
    """One transfer's share of the budget."""

    def __init__(self, budget: MemoryBudget, size: int) -> None:
        self._budget = budget
        self.size = size

    def grow(self, extra: int) -> bool:
        """Claim `extra` more bytes without waiting; False when the budget is spent."""
        if not self._budget._take(extra):
            return False
        self.size += extra
        return True

    def shrink_to(self, size: int) -> None:
        if size < self.size:
            self._budget._give(self.size - size)
            self.size = size

    def release(self) -> None:
        self.shrink_to(0)
