"""What a customer used and caused (the logic under `smarthostctl customer stats`), read from Redis.

The counters are those of smarthost_common.customer_stats; the messages used
in the current window are counted in the rate limit's own sorted sets, with
the Redis clock, exactly as the policy's rate script counts them.
"""

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from smarthost_common.customer_stats import FIELDS, current_hour, hour_key, senders_key

RATE_PREFIX = "smarthost:rate:"


@dataclass(frozen=True)
class SenderWindow:
    # `ip:<address>` or `user:<name>`: whose window it is.
    sender: str
    used: int
    limit: int
    window_s: float


@dataclass(frozen=True)
class CustomerReport:
    customer: str
    hours: int
    senders: list[SenderWindow]
    # FIELDS -> sum over the last `hours` hours, this one included.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def window_used(self) -> int:
        return sum(sender.used for sender in self.senders)


async def customer_report(redis: Redis, customer: str, hours: int) -> CustomerReport:
    seconds, micros = await redis.time()
    now_ms = seconds * 1000 + micros // 1000
    found: Any = await redis.hgetall(senders_key(customer))
    windows: list[tuple[str, int, int]] = []
    for key, value in found.items():
        limit, _, window = _text(value).partition("/")
        windows.append((_text(key), int(limit), int(window)))
    now_hour = current_hour(seconds)
    async with redis.pipeline(transaction=False) as pipe:
        for key, _, window_ms in windows:
            # The rate script drops scores <= now - window, so what counts is strictly after it.
            pipe.zcount(key, f"({now_ms - window_ms}", "+inf")
        for hour in range(now_hour - hours + 1, now_hour + 1):
            pipe.hgetall(hour_key(customer, hour))
        replies = await pipe.execute()
    used, per_hour = replies[: len(windows)], replies[len(windows) :]
    senders = [
        SenderWindow(key.removeprefix(RATE_PREFIX), int(count), limit, window_ms / 1000)
        for (key, limit, window_ms), count in zip(windows, used, strict=True)
    ]
    counts = dict.fromkeys(FIELDS, 0)
    for hour in per_hour:
        for name, value in hour.items():
            if _text(name) in counts:
                counts[_text(name)] += int(value)
    return CustomerReport(customer, hours, sorted(senders, key=lambda sender: sender.sender), counts)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
