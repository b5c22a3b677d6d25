"""The delivery side of the Redis queue: read, settle, defer, promote, claim."""

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common.queue import DEFERRED_SET, DELIVERY_GROUP, READY_STREAM, message_key

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

Entry = tuple[str, str]  # (stream entry id, queue id)


class DeliveryQueue:
    def __init__(self, redis: Redis, consumer: str) -> None:
        self._redis = redis
        self._consumer = consumer
        self._promote = redis.register_script(PROMOTE_DUE)

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
        return [(_text(entry_id), _text(fields[b"id"])) for _, entries in reply or [] for entry_id, fields in entries]

    async def claim_abandoned(self, idle_ms: int, count: int) -> list[Entry]:
        """Entries a dead worker read but never settled (at-least-once)."""
        claimed: Any = await self._redis.xautoclaim(
            READY_STREAM, DELIVERY_GROUP, self._consumer, min_idle_time=idle_ms, start_id="0-0", count=count
        )
        # Entries deleted meanwhile come back without fields.
        return [(_text(entry_id), _text(fields[b"id"])) for entry_id, fields in claimed[1] if fields]

    async def promote_due(self, now_ms: int, limit: int = 100) -> int:
        return int(await self._promote(keys=[DEFERRED_SET, READY_STREAM], args=[now_ms, limit]))

    async def load(self, queue_id: str) -> tuple[QueuedMessage, bytes] | None:
        record, body = await self._redis.hmget(message_key(queue_id), ["record", "body"])
        if not isinstance(record, bytes) or not isinstance(body, bytes):
            return None
        return QueuedMessage.FromString(record), body

    async def finish(self, entry_id: str, queue_id: str) -> None:
        """Every recipient is settled: forget the message."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(message_key(queue_id))
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry_id)
            pipe.xdel(READY_STREAM, entry_id)
            await pipe.execute()

    async def defer(self, entry_id: str, record: QueuedMessage) -> None:
        """Save progress and park the message until its next attempt."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(message_key(record.queue_id), "record", record.SerializeToString())
            pipe.zadd(DEFERRED_SET, {record.queue_id: record.next_attempt_ms})
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry_id)
            pipe.xdel(READY_STREAM, entry_id)
            await pipe.execute()

    async def drop_entry(self, entry_id: str) -> None:
        """A stream entry whose message is gone (already delivered, or deleted)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(READY_STREAM, DELIVERY_GROUP, entry_id)
            pipe.xdel(READY_STREAM, entry_id)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
