"""The delivery side of the Redis queue: read, claim, settle, defer, promote, dead-letter.

Every change of a message's state is one Lua script, so a
worker killed between any two lines leaves the message either where it was
(and it is claimed again) or where it goes next, never nowhere. What settles
a message runs with Redis at its maxmemory too (`allow-oom` scripts and
commands that free memory), so a full Redis never stops delivery.
"""

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common import reputation
from smarthost_common.customer_stats import STATS_TTL, current_hour, hour_key
from smarthost_common.queue import (
    DEAD_STREAM,
    DEFERRED_SET,
    DELIVERY_GROUP,
    LUA_LIB,
    QUEUE_INDEX,
    READY_STREAM,
    TIERS,
    StoredBody,
    message_args,
    message_key,
    message_keys,
    run_script,
    stored_body,
)
from smarthost_common.trace import TRACE_MAX_EVENTS, TRACE_TTL, trace_event, trace_key

# Moves due deferred messages back to the ready stream. One script, so a
# message is promoted exactly once however many workers run it at once.
# The entry has no size: a retry's body is read only if a transaction needs it.
# allow-oom: it only moves ids, and a full Redis must not stop retries.
PROMOTE_DUE = """#!lua flags=allow-oom
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'id', id)
end
return #due
"""

# Settles one attempt in one step: queues its DSNs, appends its trace, adds
# the recipients delivered and bounced to the customer's hourly counters and
# to its reputation window (which may hold it, see smarthost_common.reputation),
# then either forgets the message (finish) or saves its progress and parks it
# until its next attempt (defer), and acks the stream entry. With a spooled
# size the body, just committed to the spool, leaves Redis. An operator may
# have deleted the message meanwhile: then only the entry is settled.
# Returns the tier that held the body ('' when gone), then record_outcome's reply.
# KEYS: message, queue index, tiers, ready stream, deferred set, trace, customer's hour,
#       customer's outcomes, held customers, reputation settings, then 5 per DSN (add_message's)
# ARGV: mode, group, entry id, queue id, next ms, record, spooled size or '', eightbit,
#       trace max events, trace ttl, delivered, bounced, counters ttl, customer, now ms,
#       default reputation settings, event count, events..., then 8 per DSN (add_message's)
SETTLE = (
    "#!lua flags=allow-oom\n"
    + LUA_LIB
    + reputation.LUA_LIB
    + """
local max_events, ttl = ARGV[9], ARGV[10]
local delivered, bounced = tonumber(ARGV[11]), tonumber(ARGV[12])
if delivered > 0 then redis.call('HINCRBY', KEYS[7], 'delivered', delivered) end
if bounced > 0 then redis.call('HINCRBY', KEYS[7], 'bounced', bounced) end
local held = {0}
if delivered + bounced > 0 then
  redis.call('EXPIRE', KEYS[7], ARGV[13])
  local settings = redis.call('HGET', KEYS[10], ARGV[14]) or ARGV[16]
  held = record_outcome(KEYS[8], KEYS[9], ARGV[14], tonumber(ARGV[15]), delivered, bounced, settings)
end
local events = {}
local n = tonumber(ARGV[17])
for i = 1, n do events[i] = ARGV[17 + i] end
local at, k = 18 + n, 11
while at <= #ARGV do
  add_message({KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]},
              {unpack(ARGV, at, at + 7)}, max_events, ttl)
  at, k = at + 8, k + 5
end
append_trace(KEYS[6], max_events, ttl, events)
local tier = ''
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[1] == 'finish' then
    tier = uncount(KEYS[1], KEYS[3])
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[4])
  else
    redis.call('HSET', KEYS[1], 'record', ARGV[6])
    if ARGV[7] ~= '' and redis.call('HEXISTS', KEYS[1], 'body') == 1 then
      uncount(KEYS[1], KEYS[3])
      redis.call('HDEL', KEYS[1], 'body')
      redis.call('HSET', KEYS[1], 'spooled', ARGV[7], 'eightbit', ARGV[8])
      redis.call('HINCRBY', KEYS[3], 'disk_bytes', ARGV[7])
      redis.call('HINCRBY', KEYS[3], 'disk_messages', 1)
    end
    redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
  end
end
redis.call('XACK', KEYS[4], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[4], ARGV[3])
return {tier, unpack(held)}
"""
)


# KEYS: dead stream, ready stream, trace; ARGV: queue id, deliveries, reason, group, entry id,
#       trace max events, trace ttl, trace event
DEAD_LETTER = (
    "#!lua flags=allow-oom\n"
    + LUA_LIB
    + """
redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'deliveries', ARGV[2], 'reason', ARGV[3])
append_trace(KEYS[3], ARGV[6], ARGV[7], {ARGV[8]})
redis.call('XACK', KEYS[2], ARGV[4], ARGV[5])
redis.call('XDEL', KEYS[2], ARGV[5])
return 1
"""
)


# A message's record, where its body is, and the body when it came with the record; None when gone.
Loaded = tuple[QueuedMessage, StoredBody, bytes | None] | None


@dataclass(frozen=True)
class Usage:
    """Recipients of one attempt to count for the customer who sent them (`smarthostctl customer stats`)."""

    customer: str
    delivered: int
    bounced: int


@dataclass(frozen=True)
class Entry:
    entry_id: str
    queue_id: str
    # How often the group handed this entry to a worker; > 1 after a claim.
    deliveries: int = 1
    # A memory-tier body's size, as the enqueue wrote it; 0 when the entry does not say
    # (a retry, a message an operator or a release moved, an entry of an older version).
    body_size: int = 0

    @classmethod
    def of(cls, entry_id: bytes | str, fields: dict[bytes, bytes], deliveries: int = 1) -> "Entry":
        """From a stream entry's id and fields."""
        return cls(text(entry_id), text(fields[b"id"]), deliveries, int(fields.get(b"size", 0)))


class DeliveryQueue:
    def __init__(self, redis: Redis, consumer: str) -> None:
        self._redis = redis
        self._consumer = consumer
        self._promote = redis.register_script(PROMOTE_DUE)
        self._claim_cursor = "0-0"

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(READY_STREAM, DELIVERY_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        reply: Any = await self._redis.xreadgroup(
            DELIVERY_GROUP, self._consumer, {READY_STREAM: ">"}, count=count, block=block_ms
        )
        return [Entry.of(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries]

    async def claim_abandoned(self, idle_ms: int, count: int) -> list[Entry]:
        """Entries a dead worker read but never settled (at-least-once), with their delivery counts."""
        reply: Any = await self._redis.xautoclaim(
            READY_STREAM,
            DELIVERY_GROUP,
            self._consumer,
            min_idle_time=idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        # Walk the whole pending list across calls: XAUTOCLAIM scans a bounded slice each time.
        self._claim_cursor = text(reply[0])
        claimed: list[Entry] = []
        for entry_id, fields in reply[1]:
            entry_id = text(entry_id)
            if not fields:
                # Deleted meanwhile (settled by its first worker after all).
                await self._redis.xack(READY_STREAM, DELIVERY_GROUP, entry_id)
                continue
            pending: Any = await self._redis.xpending_range(
                READY_STREAM, DELIVERY_GROUP, min=entry_id, max=entry_id, count=1
            )
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            claimed.append(Entry.of(entry_id, fields, deliveries))
        return claimed

    async def keep(self, entry_ids: list[str | bytes | int | memoryview]) -> None:
        """Reset the idle time of entries this worker is still delivering, so nobody claims them."""
        if entry_ids:
            await self._redis.xclaim(READY_STREAM, DELIVERY_GROUP, self._consumer, 0, entry_ids, justid=True)

    async def promote_due(self, now_ms: int, limit: int = 100) -> int:
        return int(await self._promote(keys=[DEFERRED_SET, READY_STREAM], args=[now_ms, limit]))

    async def exists(self, queue_id: str) -> bool:
        return bool(await self._redis.exists(message_key(queue_id)))

    async def load(self, requests: list[tuple[str, bool]]) -> list[Loaded]:
        """Per (queue id, whether to read its body too): the record, where the body is, and the body
        when asked for and in memory; None for a message that is gone.

        One round trip of plain reads for all: no script, which would make Redis hash every byte
        of the body, and no MULTI, which Redis refuses past its maxmemory. Other bodies are read
        only when a transaction needs them (`read_body`).
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue_id, with_body in requests:
                key = message_key(queue_id)
                if with_body:
                    pipe.hmget(key, "record", "spooled", "eightbit", "body")
                else:
                    pipe.hmget(key, "record", "spooled", "eightbit")
                    pipe.hstrlen(key, "body")
            replies = iter(await pipe.execute())
        return [_loaded(next(replies), None if with_body else next(replies)) for _, with_body in requests]

    async def read_body(self, queue_id: str) -> bytes | None:
        """A memory-tier body; None when it is gone (settled, deleted, or moved to the spool)."""
        body = await self._redis.hget(message_key(queue_id), "body")
        return body if isinstance(body, bytes) else None

    async def finish(
        self, entry: Entry, dsns: list[tuple[QueuedMessage, bytes]], trace: list[str], usage: Usage | None = None
    ) -> bool:
        """Every recipient is settled: queue the DSNs, record the story and forget the message, in one step.

        True when the body was in the spool, whose row the caller then deletes.
        """
        placeholder = QueuedMessage(queue_id=entry.queue_id)
        tier = await self._settle("finish", entry, placeholder, dsns, trace, None, usage)
        return tier == b"disk"

    async def defer(
        self,
        entry: Entry,
        record: QueuedMessage,
        dsns: list[tuple[QueuedMessage, bytes]],
        trace: list[str],
        spooled: StoredBody | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Save progress, queue the DSNs, record the story and park the message until its next attempt, in one step.

        `spooled`: the body was just committed to the spool, so Redis lets go of its copy in the same step.
        """
        await self._settle("defer", entry, record, dsns, trace, spooled, usage)

    async def _settle(
        self,
        mode: str,
        entry: Entry,
        record: QueuedMessage,
        dsns: list[tuple[QueuedMessage, bytes]],
        trace: list[str],
        spooled: StoredBody | None,
        usage: Usage | None,
    ) -> object:
        """Runs SETTLE; returns the tier that held the body, after logging a hold it made."""
        keys = [
            message_key(entry.queue_id),
            QUEUE_INDEX,
            TIERS,
            READY_STREAM,
            DEFERRED_SET,
            trace_key(entry.queue_id),
            # Not written when there is nothing to count.
            hour_key(usage.customer, current_hour()) if usage else message_key(entry.queue_id),
            reputation.outcomes_key(usage.customer) if usage else message_key(entry.queue_id),
            reputation.HELD,
            reputation.SETTINGS,
        ]
        args: list[bytes | bytearray | str | int] = [
            mode,
            DELIVERY_GROUP,
            entry.entry_id,
            entry.queue_id,
            record.next_attempt_ms,
            record.SerializeToString() if mode == "defer" else b"",
            str(spooled.size) if spooled else "",
            "1" if spooled and spooled.eight_bit else "0",
            TRACE_MAX_EVENTS,
            TRACE_TTL,
            usage.delivered if usage else 0,
            usage.bounced if usage else 0,
            STATS_TTL,
            usage.customer if usage else "",
            int(time.time() * 1000),
            reputation.DEFAULT_SETTINGS,
            len(trace),
            *trace,
        ]
        for dsn_record, dsn_body in dsns:
            keys += message_keys(dsn_record)
            args += message_args(dsn_record, dsn_body, b"", 0, {"dsn_of": entry.queue_id}, not dsn_body.isascii())
        tier, *held = await run_script(self._redis, SETTLE, keys, args)
        if usage:
            reputation.tripped(usage.customer, held)
        return tier

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Park an entry that keeps failing where only an operator moves it (`smarthostctl queue retry`)."""
        event = trace_event("dead_lettered", deliveries=entry.deliveries, reason=reason)
        await run_script(
            self._redis,
            DEAD_LETTER,
            [DEAD_STREAM, READY_STREAM, trace_key(entry.queue_id)],
            [
                entry.queue_id,
                entry.deliveries,
                reason,
                DELIVERY_GROUP,
                entry.entry_id,
                TRACE_MAX_EVENTS,
                TRACE_TTL,
                event,
            ],
        )

    async def drop_entry(self, entry: Entry) -> None:
        """A stream entry whose message is gone (already delivered, or deleted).

        Not a MULTI, which Redis refuses past maxmemory: both commands are idempotent.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry.entry_id)
            pipe.xdel(READY_STREAM, entry.entry_id)
            await pipe.execute()


def _loaded(fields: list[Any], body_size: int | None) -> Loaded:
    """From HMGET's record, spooled and eightbit, then either the body (read with them) or its size."""
    record, spooled, eight_bit, *body = fields
    data = body[0] if body and isinstance(body[0], bytes) else None
    stored = stored_body(spooled, eight_bit, len(data) if data is not None else body_size or 0)
    if not isinstance(record, bytes) or stored is None:
        return None
    return QueuedMessage.FromString(record), stored, data


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
