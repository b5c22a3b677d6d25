"""Process-wide limits: connections in total and per client IP, DATA memory.

aiosmtpd keeps a whole message in memory until its end of DATA, so many
concurrent large transfers could exhaust the pod (aiosmtpd issue #293). The
`MemoryBudget` bounds the memory all transfers use together: a transfer
reserves memory before its 354 (waiting a little when the budget is taken)
and grows its reservation as data arrives, never blocking mid-transfer,
so transfers cannot deadlock waiting on each other.
"""

import asyncio
from collections import Counter


class ConnectionLimits:
    def __init__(self, total: int, per_ip: int) -> None:
        self._total = total
        self._per_ip = per_ip
        self._connections = 0
        self._by_ip: Counter[str] = Counter()

    def open(self) -> bool:
        """Count a new connection; False when the total is already reached."""
        if self._connections >= self._total:
            return False
        self._connections += 1
        return True

    def close(self) -> None:
        self._connections -= 1

    def admit(self, client_ip: str) -> bool:
        """Count a connection from `client_ip` (known after any PROXY header)."""
        if self._by_ip[client_ip] >= self._per_ip:
            return False
        self._by_ip[client_ip] += 1
        return True

    def leave(self, client_ip: str) -> None:
        self._by_ip[client_ip] -= 1
        if self._by_ip[client_ip] <= 0:
            del self._by_ip[client_ip]


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
