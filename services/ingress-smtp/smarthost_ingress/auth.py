"""Failed SMTP AUTH per client IP: slowed, then refused.

Each failure within the window makes the next failure reply wait longer
(`delay` times the failures so far); at `max_failures` the IP may not try
again until its oldest failure leaves the window. The counters live in this
process, like Postfix's anvil: with N replicas a client gets at most N times
the attempts. Only so many IPs are tracked, the stalest forgotten first.
"""

import time
from collections import OrderedDict, deque

MAX_TRACKED_IPS = 10_000


class AuthThrottle:
    def __init__(self, max_failures: int, window: float, delay: float) -> None:
        self._max_failures = max_failures
        self._window = window
        self._delay = delay
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client_ip: str) -> deque[float]:
        failures = self._failures.get(client_ip)
        if failures is None:
            return deque()
        horizon = time.monotonic() - self._window
        while failures and failures[0] < horizon:
            failures.popleft()
        if not failures:
            del self._failures[client_ip]
        return failures

    def blocked(self, client_ip: str) -> bool:
        return len(self._recent(client_ip)) >= self._max_failures

    def failed(self, client_ip: str) -> float:
        """Record a failure; returns how long to wait before answering it."""
        failures = self._recent(client_ip)
        failures.append(time.monotonic())
        self._failures[client_ip] = failures
        self._failures.move_to_end(client_ip)
        while len(self._failures) > MAX_TRACKED_IPS:
            self._failures.popitem(last=False)
        return self._delay * min(len(failures), self._max_failures)
