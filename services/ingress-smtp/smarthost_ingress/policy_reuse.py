"""Policy answers the policy marked reusable, kept for the lifetime it gave.

With them a steady stream from one customer host costs one policy call per
message (CheckMessage, the rate limit): its connection, sender-domain and
recipient-domain verdicts come from here. The policy decides what may be
reused and for how long; policy.proto says for which later requests.
"""

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

R = TypeVar("R")

# Scopes kept per kind of check; past it the oldest goes first (all share one
# lifetime, so the oldest is also the first to expire).
MAX_ENTRIES = 10_000


class ReuseCache(Generic[R]):
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        # key: (expiry on the monotonic clock, the bound the verdict covers, the response)
        self._entries: dict[Hashable, tuple[float, int, R]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[int, R] | None:
        """The bound and the response kept for `key`, while its lifetime lasts."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, bound, response = entry
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        return bound, response

    def put(self, key: Hashable, response: R, reuse_ms: int, bound: int = 0) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic() + reuse_ms / 1000, bound, response)


def scope_domain(address: str) -> str | None:
    """The domain part a sender's or recipient's verdict is reused for ("" for <>); None: not reusable.

    The text after the last `@`, as the policy takes it; its A-label form
    ignores ASCII case, so that is ignored here too.
    """
    if not address:
        return ""
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        return None
    return domain.lower() if domain.isascii() else domain
