"""Per-customer counters in Redis, for `smarthostctl customer stats NAME`.

Metrics carry no customer label by default (cardinality), so the services
also keep a few counters per customer in hourly hashes
`smarthost:customer:<name>:hour:<unix hour>` (accepted, refused, rate_limited
from the policy; delivered, bounced from delivery), each expiring after
`STATS_TTL`. The policy also records which rate-limit windows belong to the
customer (`smarthost:customer:<name>:senders`: window key -> "limit/window
ms"), so the messages used in the current window are read from the same
sorted sets the rate limit itself counts in: exact, and no second counter.
"""

import time

from redis.asyncio.client import Pipeline

STATS_TTL = 8 * 86400
HOUR = 3600
# Fields of the hourly hash, in the order operators read them.
FIELDS = ("accepted", "refused", "rate_limited", "delivered", "bounced")


def hour_key(customer: str, hour: int) -> str:
    return f"smarthost:customer:{customer}:hour:{hour}"


def senders_key(customer: str) -> str:
    return f"smarthost:customer:{customer}:senders"


def current_hour(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // HOUR)


def add_counts(pipe: Pipeline, customer: str, counts: dict[str, int]) -> None:
    """Add `counts` (field -> increment) to this hour's hash of `customer`."""
    key = hour_key(customer, current_hour())
    for field, amount in counts.items():
        if amount:
            pipe.hincrby(key, field, amount)
    pipe.expire(key, STATS_TTL)
