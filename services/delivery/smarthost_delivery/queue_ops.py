"""The delivery side of the Redis queue: read, claim, settle, defer, promote, dead-letter.

Every change of a message's state is one MULTI/EXEC (or one script), so a
worker killed between any two lines leaves the message either where it was
(and it is claimed again) or where it goes next, never nowhere.
"""

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common.queue import (
    DEAD_STREAM,
    DEFERRED_SET,
    DELIVERY_GROUP,
    QUEUE_INDEX,
    READY_STREAM,
    add_to_queue,
    message_key,
)
from smarthost_common.trace import add_trace, trace_event

# Moves due deferred messages back to the ready stream. One script, so a
# message is promoted exactly once however many workers run it at once.
PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'id', id)
end
return #due
"""

# Saves a message's progress and parks it until ARGV[4], unless an operator
# deleted it meanwhile (then only the stream entry is settled).
# KEYS: message, deferred set, ready stream; ARGV: group, entry id, queue id, next ms, record.
DEFER = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'record', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Entry:
    entry_id: str
    queue_id: str
    # How often the group handed this entry to a worker; > 1 after a claim.
    deliveries: int = 1


class DeliveryQueue:
    def __init__(self, redis: Redis, consumer: str) -> None:
        self._redis = redis
        self._consumer = consumer
        self._promote = redis.register_script(PROMOTE_DUE)
        self._defer = redis.register_script(DEFER)
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
        return [
            Entry(_text(entry_id), _text(fields[b"id"])) for _, entries in reply or [] for entry_id, fields in entries
        ]

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
        self._claim_cursor = _text(reply[0])
        claimed: list[Entry] = []
        for entry_id, fields in reply[1]:
            entry_id = _text(entry_id)
            if not fields:
                # Deleted meanwhile (settled by its first worker after all).
                await self._redis.xack(READY_STREAM, DELIVERY_GROUP, entry_id)
                continue
            pending: Any = await self._redis.xpending_range(
                READY_STREAM, DELIVERY_GROUP, min=entry_id, max=entry_id, count=1
            )
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            claimed.append(Entry(entry_id, _text(fields[b"id"]), deliveries))
        return claimed

    async def keep(self, entry_ids: list[str | bytes | int | memoryview]) -> None:
        """Reset the idle time of entries this worker is still delivering, so nobody claims them."""
        if entry_ids:
            await self._redis.xclaim(READY_STREAM, DELIVERY_GROUP, self._consumer, 0, entry_ids, justid=True)

    async def promote_due(self, now_ms: int, limit: int = 100) -> int:
        return int(await self._promote(keys=[DEFERRED_SET, READY_STREAM], args=[now_ms, limit]))

    async def exists(self, queue_id: str) -> bool:
        return bool(await self._redis.exists(message_key(queue_id)))

    async def load(self, queue_id: str) -> tuple[QueuedMessage, bytes] | None:
        record, body = await self._redis.hmget(message_key(queue_id), ["record", "body"])
        if not isinstance(record, bytes) or not isinstance(body, bytes):
            return None
        return QueuedMessage.FromString(record), body

    async def finish(self, entry: Entry, dsns: list[tuple[QueuedMessage, bytes]], trace: list[str]) -> None:
        """Every recipient is settled: queue the DSNs, record the story and forget the message, together."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for record, body in dsns:
                add_to_queue(pipe, record, body, dsn_of=entry.queue_id)
            add_trace(pipe, entry.queue_id, *trace)
            pipe.delete(message_key(entry.queue_id))
            pipe.zrem(QUEUE_INDEX, entry.queue_id)
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry.entry_id)
            pipe.xdel(READY_STREAM, entry.entry_id)
            await pipe.execute()

    async def defer(
        self, entry: Entry, record: QueuedMessage, dsns: list[tuple[QueuedMessage, bytes]], trace: list[str]
    ) -> None:
        """Save progress, queue the DSNs, record the story and park the message until its next attempt, together."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for dsn_record, dsn_body in dsns:
                add_to_queue(pipe, dsn_record, dsn_body, dsn_of=record.queue_id)
            add_trace(pipe, record.queue_id, *trace)
            await self._defer(
                keys=[message_key(record.queue_id), DEFERRED_SET, READY_STREAM],
                args=[
                    DELIVERY_GROUP,
                    entry.entry_id,
                    record.queue_id,
                    record.next_attempt_ms,
                    record.SerializeToString(),
                ],
                client=pipe,
            )
            await pipe.execute()

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Park an entry that keeps failing where only an operator moves it (`smarthostctl queue retry`)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD_STREAM, {"id": entry.queue_id, "deliveries": entry.deliveries, "reason": reason})
            add_trace(pipe, entry.queue_id, trace_event("dead_lettered", deliveries=entry.deliveries, reason=reason))
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry.entry_id)
            pipe.xdel(READY_STREAM, entry.entry_id)
            await pipe.execute()

    async def drop_entry(self, entry: Entry) -> None:
        """A stream entry whose message is gone (already delivered, or deleted)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry.entry_id)
            pipe.xdel(READY_STREAM, entry.entry_id)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
