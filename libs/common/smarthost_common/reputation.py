"""The reputation breaker's state in Redis, shared by every replica of policy and delivery.

- `smarthost:reputation:outcomes:<customer>`: hash of outcome buckets, fields
  `<bucket start s>o` (delivered) and `<bucket start s>b` (bounced). A bucket
  is a sixtieth of the window, at least a minute; it counts while any of it is
  inside the window, and buckets past it are dropped when a bounce is
  recorded or a new bucket starts.
- `smarthost:reputation:held`: hash customer -> JSON {reason, since_ms, by}.
- `smarthost:reputation:settings`: hash customer -> "window_s minMessages
  maxBounceRate window_text", and `smarthost:reputation:suspended`: a set,
  both published by the policy on each (re)load, so delivery evaluates
  without the policy file.

A customer is held only when a bounce is recorded (a rate only rises then),
in the same script that records it: the sum over the window, the threshold
and the hold are one step, exact across any number of replicas.
"""

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis

from smarthost_common.durations import format_duration
from smarthost_common.queue import run_script

log = logging.getLogger("smarthost.reputation")

PREFIX = "smarthost:reputation:"
HELD = f"{PREFIX}held"
SETTINGS = f"{PREFIX}settings"
SUSPENDED = f"{PREFIX}suspended"

# `defaults.reputation` when the policy file says nothing.
DEFAULT_WINDOW_S = 3600.0
DEFAULT_MIN_MESSAGES = 50
DEFAULT_MAX_BOUNCE_RATE = 0.10

HOLDS = Counter("smarthost_reputation_holds_total", "Customers the breaker held for their bounce rate")

# Lua functions the breaker's scripts share.
LUA_LIB = """
-- A settings string ("window_s min rate text"): window, minimum messages, highest rate, window as written.
local function parse_reputation(text)
  local window, min, rate, written = string.match(text, '^(%S+) (%S+) (%S+) (%S+)$')
  return tonumber(window), tonumber(min), tonumber(rate), written
end

local function bucket_size(window) return math.max(60, math.ceil(window / 60)) end

-- Delivered and bounced in the live buckets of an outcome hash; with prune, the others are dropped.
local function window_sum(key, now, window, prune)
  local size = bucket_size(window)
  local fields = redis.call('HGETALL', key)
  local ok, bounced, old = 0, 0, {}
  for i = 1, #fields, 2 do
    local start, kind = string.match(fields[i], '^(%d+)([ob])$')
    if start and tonumber(start) + size > now - window then
      if kind == 'o' then ok = ok + tonumber(fields[i + 1]) else bounced = bounced + tonumber(fields[i + 1]) end
    else
      old[#old + 1] = fields[i]
    end
  end
  if prune and #old > 0 then redis.call('HDEL', key, unpack(old)) end
  return ok, bounced
end

-- Adds a customer's outcomes to its window; with a bounce, holds the customer past its threshold.
-- Returns {1, bounced, total, window} when this call held the customer, else {0}.
local function record_outcome(outcomes, held, customer, now_ms, ok, bounced, settings)
  local window, min, rate, written = parse_reputation(settings)
  local now = math.floor(now_ms / 1000)
  local size = bucket_size(window)
  local start = now - now % size
  local fresh = false
  if ok > 0 then fresh = redis.call('HINCRBY', outcomes, start .. 'o', ok) == ok end
  if bounced > 0 then fresh = redis.call('HINCRBY', outcomes, start .. 'b', bounced) == bounced or fresh end
  redis.call('EXPIRE', outcomes, window + size)
  if bounced == 0 then
    if fresh then window_sum(outcomes, now, window, true) end
    return {0}
  end
  local sum_ok, sum_bounced = window_sum(outcomes, now, window, true)
  local total = sum_ok + sum_bounced
  if total < min or sum_bounced / total <= rate or redis.call('HEXISTS', held, customer) == 1 then return {0} end
  local reason = string.format('bounce rate %.2f (%d of %d) over %s', sum_bounced / total, sum_bounced, total, written)
  redis.call('HSET', held, customer, cjson.encode({reason = reason, since_ms = now_ms, by = 'breaker'}))
  return {1, sum_bounced, total, window}
end
"""

# KEYS: outcomes, held; ARGV: customer, now ms, delivered, bounced, settings string.
RECORD = (
    LUA_LIB
    + """
return record_outcome(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
"""
)

# KEYS: outcomes, settings; ARGV: customer, now ms, default settings. Returns delivered, bounced, settings.
WINDOW = (
    "#!lua flags=no-writes\n"
    + LUA_LIB
    + """
local settings = redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[3]
local window = parse_reputation(settings)
local ok, bounced = window_sum(KEYS[1], math.floor(tonumber(ARGV[2]) / 1000), window, false)
return {ok, bounced, settings}
"""
)


def outcomes_key(customer: str) -> str:
    return f"{PREFIX}outcomes:{customer}"


def settings_text(window_s: float, min_messages: int, max_bounce_rate: float) -> str:
    """A customer's settings as the scripts read them; the window in whole seconds, at least one."""
    window = max(1, math.ceil(window_s))
    return f"{window} {min_messages} {max_bounce_rate!r} {format_duration(window)}"


DEFAULT_SETTINGS = settings_text(DEFAULT_WINDOW_S, DEFAULT_MIN_MESSAGES, DEFAULT_MAX_BOUNCE_RATE)


@dataclass(frozen=True)
class Tripped:
    """A customer this call held: the window's figures that passed the threshold."""

    customer: str
    bounced: int
    total: int
    window_s: int


def tripped(customer: str, reply: Any) -> Tripped | None:
    """The hold a recording script's reply reports, logged and counted; None when it held nobody."""
    if not reply or int(reply[0]) != 1:
        return None
    hold = Tripped(customer, int(reply[1]), int(reply[2]), int(reply[3]))
    HOLDS.inc()
    log.warning(
        "customer held",
        extra={
            "customer": customer,
            "bounced": hold.bounced,
            "total": hold.total,
            "rate": round(hold.bounced / hold.total, 4),
            "window": format_duration(hold.window_s),
        },
    )
    return hold


async def record_outcomes(
    redis: Redis, customer: str, delivered: int, bounced: int, settings: str, now_ms: int | None = None
) -> Tripped | None:
    """Add outcomes to `customer`'s window and hold it when past its threshold (`settings_text`)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    reply = await run_script(
        redis, RECORD, [outcomes_key(customer), HELD], [customer, now, delivered, bounced, settings]
    )
    return tripped(customer, reply)


@dataclass(frozen=True)
class Window:
    delivered: int
    bounced: int
    window_s: int
    min_messages: int
    max_bounce_rate: float

    @property
    def rate(self) -> float:
        total = self.delivered + self.bounced
        return self.bounced / total if total else 0.0


async def window(redis: Redis, customer: str, now_ms: int | None = None) -> Window:
    """What the breaker sees of `customer` now, with the threshold that applies to it."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    ok, bounced, settings = await run_script(
        redis, WINDOW, [outcomes_key(customer), SETTINGS], [customer, now, DEFAULT_SETTINGS]
    )
    window_s, min_messages, rate, _ = _text(settings).split(" ")
    return Window(int(ok), int(bounced), int(window_s), int(min_messages), float(rate))


@dataclass(frozen=True)
class Hold:
    reason: str
    since_ms: int
    # "breaker" or "operator".
    by: str


def parse_hold(raw: bytes | str) -> Hold:
    try:
        found = json.loads(raw)
        return Hold(str(found["reason"]), int(found["since_ms"]), str(found["by"]))
    except (ValueError, KeyError, TypeError):
        # Shown rather than hidden: the customer stays held either way.
        return Hold(_text(raw), 0, "unknown")


async def held_customers(redis: Redis) -> dict[str, Hold]:
    found: Any = await redis.hgetall(HELD)
    return {_text(name): parse_hold(raw) for name, raw in found.items()}


async def hold(redis: Redis, customer: str, reason: str, by: str = "operator") -> bool:
    """Hold `customer` by hand; False when it was held already (its reason is then replaced)."""
    entry = json.dumps({"reason": reason, "since_ms": int(time.time() * 1000), "by": by})
    return bool(await redis.hset(HELD, customer, entry))


async def unhold(redis: Redis, customer: str) -> bool:
    """Lift a hold and start the customer's window afresh, so the old bounces do not hold it again at once.

    False when it was not held.
    """
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(HELD, customer)
        pipe.delete(outcomes_key(customer))
        released, _ = await pipe.execute()
    return bool(released)


async def state(redis: Redis, customer: str) -> tuple[Hold | None, bool]:
    """Whether and why `customer` is held, and whether the policy suspends it."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(HELD, customer)
        pipe.sismember(SUSPENDED, customer)
        raw, suspended = await pipe.execute()
    return (parse_hold(raw) if raw is not None else None), bool(suspended)


async def publish(redis: Redis, settings: Mapping[str, str], suspended: set[str]) -> None:
    """Replace the customers' settings and the suspended set, in one step (the policy, on each load)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(SETTINGS, SUSPENDED)
        if settings:
            pipe.hset(SETTINGS, items=[part for pair in settings.items() for part in pair])
        if suspended:
            pipe.sadd(SUSPENDED, *suspended)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
