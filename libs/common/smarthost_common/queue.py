"""The mail queue in Redis, as both the ingress (writer) and delivery (reader) see it.

Each message is a hash `smarthost:msg:<queue id>` holding the protobuf record,
whether the bytes hold 8-bit data (`eightbit`), and either the bytes (`body`:
the memory tier) or, when they are in the PostgreSQL spool (the disk tier),
their size (`spooled`). The ready stream carries queue ids (and the size of a
memory-tier body, so delivery knows whether to read it with the record), so a
message's bytes are written once however often it is retried. The index
holds every queued message by arrival time, so operators can list the queue
and see its oldest message without scanning keys. The hash `smarthost:queue:tiers`
counts messages and bytes per tier; every script that moves or removes a body
keeps it exact, and the ingress reads it to decide where a new body goes.

Every change of a message's state is one Lua script (the functions in
LUA_LIB, shared). Delivery's carry `allow-oom`: with Redis at its maxmemory
it must still ack, defer and remove (most of which frees memory), and past
maxmemory Redis refuses to queue any command in a MULTI, so a settling step
is never a MULTI. The ingress's enqueue does not: a full Redis refuses new
mail, it never refuses to settle queued mail.

A new body never enters Lua: Redis hashes every byte of every string a
script receives or reads, about two fifths of Redis's CPU at 100 KiB when
bodies went through the scripts. The enqueue writes the body with a plain HSET in the same MULTI as
its script, which is given the size; delivery reads bodies with plain
commands. Only the relay's own DSNs (small, and queued by the scripts that
settle a message or an operator's command) still pass their bytes to a script.
"""

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common.trace import TRACE_MAX_EVENTS, TRACE_TTL, trace_event, trace_key
from smarthost_common.transaction import transaction

READY_STREAM = "smarthost:queue:ready"
DELIVERY_GROUP = "delivery"
DEFERRED_SET = "smarthost:queue:deferred"
# Entries whose delivery kept crashing workers, parked for an operator.
DEAD_STREAM = "smarthost:queue:dead"
QUEUE_INDEX = "smarthost:queue:index"
# memory_bytes, memory_messages, disk_bytes, disk_messages.
TIERS = "smarthost:queue:tiers"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Lua functions the queue's scripts share; a script is flags + LUA_LIB + its body.
LUA_LIB = """
-- Appends events (a table) to a message's trace, capped and kept for ttl seconds.
local function append_trace(key, max_events, ttl, events)
  if #events == 0 then return end
  redis.call('RPUSH', key, unpack(events))
  redis.call('LTRIM', key, -tonumber(max_events), -1)
  redis.call('EXPIRE', key, ttl)
end

-- Counts a memory-tier body of `size` bytes unless that would pass max bytes (0: no mark); false then.
local function count_memory(tiers, size, max)
  max = tonumber(max)
  if max > 0 and tonumber(redis.call('HGET', tiers, 'memory_bytes') or '0') + size > max then return false end
  redis.call('HINCRBY', tiers, 'memory_bytes', size)
  redis.call('HINCRBY', tiers, 'memory_messages', 1)
  return true
end

-- Indexes and announces a stored message; returns its stream entry id. With
-- a[9] (ms) it is parked in the deferred set instead, until then or until
-- `announce`. The entry of a memory-tier body carries its `size`.
local function announce_new(k, a, size, max_events, ttl)
  redis.call('ZADD', k[2], a[3], a[1])
  append_trace(k[5], max_events, ttl, {a[8]})
  if a[9] and tonumber(a[9]) > 0 then
    -- Parked until its replicas confirm it (see `announce`); due by itself at a[9] if that step is lost.
    redis.call('ZADD', k[6], a[9], a[1])
    return 'parked'
  end
  if size then return redis.call('XADD', k[3], '*', 'id', a[1], 'size', size) end
  return redis.call('XADD', k[3], '*', 'id', a[1])
end

-- Stores a message and announces it (or parks it: a[9]). A body given
-- inline goes to the memory tier unless that would pass memory_max bytes
-- (then 0, and nothing is written); a non-empty `spooled` is the size of a
-- body the spool holds.
-- k: message, queue index, ready stream, tiers, trace, deferred set
-- a: queue id, record, received ms, body, spooled, eightbit, memory max, trace event, [park until ms]
local function add_message(k, a, max_events, ttl)
  if a[5] ~= '' then
    redis.call('HSET', k[1], 'record', a[2], 'spooled', a[5], 'eightbit', a[6])
    redis.call('HINCRBY', k[4], 'disk_bytes', a[5])
    redis.call('HINCRBY', k[4], 'disk_messages', 1)
    return announce_new(k, a, nil, max_events, ttl)
  end
  local size = string.len(a[4])
  if not count_memory(k[4], size, a[7]) then return 0 end
  redis.call('HSET', k[1], 'record', a[2], 'body', a[4], 'eightbit', a[6])
  return announce_new(k, a, size, max_events, ttl)
end

-- Takes a message out of the tier counts; says which tier held its body ('' for none).
local function uncount(message, tiers)
  local spooled = redis.call('HGET', message, 'spooled')
  if spooled then
    redis.call('HINCRBY', tiers, 'disk_bytes', -tonumber(spooled))
    redis.call('HINCRBY', tiers, 'disk_messages', -1)
    return 'disk'
  end
  if redis.call('HEXISTS', message, 'body') == 1 then
    redis.call('HINCRBY', tiers, 'memory_bytes', -redis.call('HSTRLEN', message, 'body'))
    redis.call('HINCRBY', tiers, 'memory_messages', -1)
    return 'memory'
  end
  return ''
end
"""

# A parked message's replicas confirmed it: to the ready stream now (unless
# the deferred set's own schedule moved it there already), with the size of
# a memory-tier body as the enqueue would have written it.
# KEYS: deferred set, ready stream, message; ARGV: queue id
ANNOUNCE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local size = redis.call('HSTRLEN', KEYS[3], 'body')
  if size > 0 then
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'size', size)
  else
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
  end
end
return 1
"""

# Takes back a parked message whose replicas did not confirm it, unless it
# already went to the ready stream: then it stays, and is delivered.
# KEYS: message, queue index, deferred set, tiers; ARGV: queue id. 1 when withdrawn.
WITHDRAW = (
    LUA_LIB
    + """
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
uncount(KEYS[1], KEYS[4])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
)

# The ingress's enqueue (and an operator's DSN), refused by Redis itself past
# its maxmemory: a full Redis refuses new mail, never the settling of queued
# mail. A memory-tier body is not among its arguments (see the module's
# docstring): the same MULTI writes it just before, to expire unless this
# script keeps it, and the script gets its size; past the mark it deletes it.
# KEYS: message, queue index, ready stream, tiers, trace, deferred set
# ARGV: add_message's first eight (the fourth: the size of the body written
#       beside, '' with a spooled one), trace max events, trace ttl, park until ms (0: announce now)
ENQUEUE = (
    "#!lua\n"
    + LUA_LIB
    + """
local a = {unpack(ARGV, 1, 8)}
a[9] = ARGV[11]
-- Sent again after a connection error, when the first one had run: it is queued already, once.
if redis.call('HEXISTS', KEYS[1], 'record') == 1 then
  redis.call('PERSIST', KEYS[1])
  return 'queued'
end
if a[5] ~= '' then return add_message(KEYS, a, ARGV[9], ARGV[10]) end
local size = tonumber(a[4])
if not count_memory(KEYS[4], size, a[7]) then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'record', a[2], 'eightbit', a[6])
return announce_new(KEYS, a, size, ARGV[9], ARGV[10])
"""
)

# How long a body written beside ENQUEUE lives unless the script keeps it:
# when the script fails (NOSCRIPT after a Redis restart), no body stays
# without its message.
BODY_ORPHAN_MS = 60_000


@dataclass(frozen=True)
class StoredBody:
    """Where a message's bytes are and what delivery must know of them before reading them."""

    size: int
    eight_bit: bool
    # In the spool (disk tier), else in the message's hash (memory tier).
    spooled: bool


@dataclass(frozen=True)
class TierCounts:
    memory_messages: int = 0
    memory_bytes: int = 0
    disk_messages: int = 0
    disk_bytes: int = 0


@cache
def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


async def run_script(redis: Redis, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVALSHA: the scripts are kilobytes, and would otherwise travel (and be hashed by Redis) with every call.

    The first call after a Redis restart finds the script cache empty and sends the text once.
    """
    try:
        return await redis.evalsha(_sha(script), len(keys), *keys, *args)
    except NoScriptError:
        return await redis.eval(script, len(keys), *keys, *args)


def message_key(queue_id: str) -> str:
    return f"smarthost:msg:{queue_id}"


def new_queue_id() -> str:
    """16 characters, sortable by time: 48 bits of milliseconds, 32 random bits."""
    value = (int(time.time() * 1000) << 32) | secrets.randbits(32)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(75, -1, -5))


def stored_body(spooled: object, eight_bit: object, memory_size: int) -> StoredBody | None:
    """From the hash's `spooled` and `eightbit` and the length of its `body`; None when the message is gone.

    A message queued before `eightbit` was kept for the memory tier counts as 8-bit: declaring
    8BITMIME for ASCII is harmless, the reverse is not.
    """
    if isinstance(spooled, bytes):
        return StoredBody(int(spooled), eight_bit == b"1", True)
    if memory_size:
        return StoredBody(memory_size, eight_bit != b"0", False)
    return None


async def tier_counts(redis: Redis) -> TierCounts:
    found = await redis.hgetall(TIERS)
    return TierCounts(**{_text(key): int(value) for key, value in found.items()})


async def enqueue(
    redis: Redis, record: QueuedMessage, body: bytes | bytearray, memory_max: int, park_ms: int = 0, **trace: object
) -> bool:
    """Store the message with its body in the memory tier and announce it (or park it until `park_ms`), in one step.

    One MULTI: the body, then ENQUEUE (`transaction`). False (and nothing written) when the memory tier would pass
    `memory_max` bytes (0: no mark). Redis past its maxmemory refuses the whole MULTI (OutOfMemoryError).
    """
    keys = [*message_keys(record), DEFERRED_SET]
    args = [
        *message_args(record, len(body), b"", memory_max, trace, not body.isascii()),
        TRACE_MAX_EVENTS,
        TRACE_TTL,
        park_ms,
    ]
    try:
        return await _enqueue_memory(redis, keys, args, body, by_sha=True)
    except NoScriptError:
        # The script cache is empty (a Redis restart): the body just written expires, and all goes again with the text.
        return await _enqueue_memory(redis, keys, args, body, by_sha=False)


async def _enqueue_memory(
    redis: Redis, keys: list[str], args: list[Any], body: bytes | bytearray, *, by_sha: bool
) -> bool:
    script = ("EVALSHA", _sha(ENQUEUE)) if by_sha else ("EVAL", ENQUEUE)
    *_, added = await transaction(redis, [*_body_commands(keys[0], body), (*script, len(keys), *keys, *args)])
    return bool(added)


def _body_commands(key: str, body: bytes | bytearray) -> list[tuple[Any, ...]]:
    """A memory-tier body as plain commands, for ENQUEUE to keep or delete in the same MULTI."""
    return [("HSET", key, "body", body), ("PEXPIRE", key, BODY_ORPHAN_MS)]


async def enqueue_spooled(
    redis: Redis, record: QueuedMessage, spooled_size: int, eight_bit: bool, park_ms: int = 0, **trace: object
) -> None:
    """Store the record of a message whose body the spool already holds (committed), and announce (or park) it."""
    args = message_args(record, b"", str(spooled_size).encode(), 0, {"tier": "disk", **trace}, eight_bit)
    keys = [*message_keys(record), DEFERRED_SET]
    await run_script(redis, ENQUEUE, keys, [*args, TRACE_MAX_EVENTS, TRACE_TTL, park_ms])


async def announce(redis: Redis, queue_id: str) -> None:
    """A parked message to the ready stream."""
    await run_script(redis, ANNOUNCE, [DEFERRED_SET, READY_STREAM, message_key(queue_id)], [queue_id])


async def withdraw(redis: Redis, queue_id: str) -> bool:
    """Take back a parked message; False when it went to the ready stream already (it stays queued)."""
    keys = [message_key(queue_id), QUEUE_INDEX, DEFERRED_SET, TIERS]
    return bool(await run_script(redis, WITHDRAW, keys, [queue_id]))


def add_to_queue(pipe: Pipeline, record: QueuedMessage, body: bytes | bytearray, **trace: object) -> None:
    """Queue a message (an operator's DSN) within the caller's MULTI, its body in the memory tier.

    `trace` adds fields to the message's first trace event.
    """
    keys = [*message_keys(record), DEFERRED_SET]
    args = message_args(record, len(body), b"", 0, trace, not body.isascii())
    for command in _body_commands(keys[0], body):
        pipe.execute_command(*command)
    pipe.eval(ENQUEUE, len(keys), *keys, *args, TRACE_MAX_EVENTS, TRACE_TTL, 0)


def message_keys(record: QueuedMessage) -> list[str]:
    """The keys of `add_message` in LUA_LIB, in order."""
    return [message_key(record.queue_id), QUEUE_INDEX, READY_STREAM, TIERS, trace_key(record.queue_id)]


def message_args(
    record: QueuedMessage,
    body: bytes | bytearray | int,
    spooled: bytes,
    memory_max: int,
    trace: dict[str, object],
    eight_bit: bool = False,
) -> list[bytes | bytearray | str | int]:
    queued = trace_event(
        "queued",
        client_ip=record.client_ip,
        helo=record.helo,
        customer=record.customer,
        mail_from=record.mail_from,
        recipients=[rcpt.address for rcpt in record.recipients],
        **trace,
    )
    return [
        record.queue_id,
        record.SerializeToString(),
        record.received_at_ms,
        body,
        spooled,
        "1" if eight_bit else "0",
        memory_max,
        queued,
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
