"""Process-wide limits: connections in total and per client IP.

DATA memory is bounded by a `MemoryBudget` (smarthost_common.memory_budget):
aiosmtpd keeps a whole message in memory until its end of DATA, so many
concurrent large transfers could exhaust the pod (aiosmtpd issue #293). A
transfer reserves memory before its 354 (waiting a little when the budget is
taken) and grows its reservation as data arrives, never blocking
mid-transfer, so transfers cannot deadlock waiting on each other.
"""

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
