"""What operators do to the queue: count, list, show, retry, delete (the logic under `smarthostctl queue`)."""

import time
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf.message import DecodeError
from redis.asyncio import Redis
from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient

from smarthost_common.queue import (
    DEAD_STREAM,
    DEFERRED_SET,
    DELIVERY_GROUP,
    LUA_LIB,
    QUEUE_INDEX,
    READY_STREAM,
    TIERS,
    add_to_queue,
    message_key,
)
from smarthost_common.spool import Spool, SpoolError
from smarthost_common.trace import add_trace, trace_event
from smarthost_delivery.down import down_key
from smarthost_delivery.dsn import Report, build_dsn
from smarthost_delivery.holds import parked_counts, parked_key

# Moves a deferred or dead-lettered message to the ready stream; says where it was.
# KEYS: message, deferred set, ready stream, dead stream; ARGV: queue id.
RETRY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
  return 'deferred'
end
local found = false
for _, entry in ipairs(redis.call('XRANGE', KEYS[4], '-', '+')) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'id' and fields[i + 1] == ARGV[1] then
      redis.call('XDEL', KEYS[4], entry[1])
      found = true
    end
  end
end
if found then
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
  return 'dead'
end
return 'active'
"""

# Removes a message from every place it can be. A worker delivering it right
# now finds it gone when it settles, and does not bring it back. Returns
# whether it existed and the tier its body was in.
# KEYS: message, deferred set, queue index, dead stream, tiers; ARGV: queue id.
DELETE = (
    LUA_LIB
    + """
local tier = uncount(KEYS[1], KEYS[5])
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for _, entry in ipairs(redis.call('XRANGE', KEYS[4], '-', '+')) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'id' and fields[i + 1] == ARGV[1] then redis.call('XDEL', KEYS[4], entry[1]) end
  end
end
return {existed, tier}
"""
)

OPERATOR_DELETED = "554 5.0.0 deleted from the queue by an operator"


@dataclass(frozen=True)
class QueueCounts:
    ready: int
    in_flight: int
    deferred: int
    dead: int
    total: int
    # Seconds since the oldest queued message arrived; 0 for an empty queue.
    oldest_age_s: float
    # Waiting while their customer is held or suspended: in none of the above.
    parked: int = 0


@dataclass(frozen=True)
class QueuedItem:
    record: QueuedMessage
    # active (ready or being delivered), deferred (waiting for its next attempt), dead,
    # or parked (its customer is held or suspended).
    state: str
    size: int
    # When a deferred message is next tried, Unix ms; 0 otherwise.
    next_attempt_ms: int


async def counts(redis: Redis) -> QueueCounts:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(READY_STREAM)
        pipe.zcard(DEFERRED_SET)
        pipe.xlen(DEAD_STREAM)
        pipe.zcard(QUEUE_INDEX)
        pipe.zrange(QUEUE_INDEX, 0, 0, withscores=True)
        ready, deferred, dead, total, oldest = await pipe.execute()
    in_flight = 0
    if ready:
        groups: Any = await redis.xinfo_groups(READY_STREAM)
        in_flight = sum(int(group["pending"]) for group in groups if _text(group["name"]) == DELIVERY_GROUP)
    age = max(0.0, time.time() - oldest[0][1] / 1000) if oldest else 0.0
    parked = sum((await parked_counts(redis)).values())
    return QueueCounts(ready - in_flight, in_flight, deferred, dead, total, age, parked)


async def list_messages(redis: Redis, limit: int) -> list[QueuedItem]:
    """The oldest `limit` messages, oldest first."""
    found: Any = await redis.zrange(QUEUE_INDEX, 0, limit - 1)
    ids = [_text(queue_id) for queue_id in found]
    return await _items(redis, ids)


async def item(redis: Redis, queue_id: str) -> QueuedItem | None:
    items = await _items(redis, [queue_id])
    return items[0] if items else None


async def show(redis: Redis, spool: Spool | None, queue_id: str) -> tuple[QueuedItem, bytes] | None:
    """The message and its bytes, from whichever tier holds them; raises SpoolError when the spool cannot tell."""
    items = await _items(redis, [queue_id])
    body, spooled = await redis.hmget(message_key(queue_id), ["body", "spooled"])
    if not items:
        return None
    if isinstance(body, bytes):
        return items[0], body
    if spooled is None:
        return None
    if spool is None:
        raise SpoolError("the body is in the disk tier: set SMARTHOST_SPOOL_URL")
    data = await spool.load(queue_id)
    return (items[0], data) if data is not None else None


async def retry(redis: Redis, queue_id: str) -> str:
    """Where the message was: deferred, dead, active (nothing to do) or missing."""
    script = redis.register_script(RETRY)
    where = _text(await script(keys=[message_key(queue_id), DEFERRED_SET, READY_STREAM, DEAD_STREAM], args=[queue_id]))
    if where in ("deferred", "dead"):
        async with redis.pipeline(transaction=False) as pipe:
            add_trace(pipe, queue_id, trace_event("retried", by="operator", was=where))
            await pipe.execute()
    return where


async def retry_all(redis: Redis) -> dict[str, str]:
    """Every deferred and dead message now, every destination tried again (dead-destination marks cleared)."""
    marks = [key async for key in redis.scan_iter(match=down_key("*"), count=1000)]
    if marks:
        await redis.delete(*marks)
    found: Any = await redis.zrange(DEFERRED_SET, 0, -1)
    deferred = [_text(queue_id) for queue_id in found]
    return {queue_id: await retry(redis, queue_id) for queue_id in deferred + await _dead_ids(redis)}


async def delete(redis: Redis, spool: Spool | None, queue_id: str, *, bounce: bool, hostname: str) -> tuple[bool, str]:
    """Remove a message; with `bounce`, queue a DSN for its undelivered recipients in the same MULTI.

    Returns whether it existed and the queue id of the DSN ("" when none).
    """
    exists = bool(await redis.exists(message_key(queue_id)))
    found = await show(redis, spool, queue_id) if bounce and exists else None
    dsn: tuple[QueuedMessage, bytes] | None = None
    if found and bounce:
        item, body = found
        pending = [
            Recipient(address=rcpt.address, last_error=rcpt.last_error or OPERATOR_DELETED, remote_mta=rcpt.remote_mta)
            for rcpt in item.record.recipients
            if not rcpt.done
        ]
        if pending and item.record.mail_from:
            report = Report("failed", pending, "an operator deleted the message from the queue")
            dsn = build_dsn(item.record, body, report, hostname)
    script = redis.register_script(DELETE)
    async with redis.pipeline(transaction=True) as pipe:
        if dsn:
            add_to_queue(pipe, *dsn, dsn_of=queue_id)
        if exists:
            deleted = trace_event("deleted", by="operator", dsn_queue_id=dsn[0].queue_id if dsn else "")
            add_trace(pipe, queue_id, deleted)
        await script(
            keys=[message_key(queue_id), DEFERRED_SET, QUEUE_INDEX, DEAD_STREAM, TIERS], args=[queue_id], client=pipe
        )
        *_, (existed, tier) = await pipe.execute()
    if tier == b"disk" and spool:
        # If this fails, the sweep removes the row: Redis no longer points at it.
        await spool.delete([queue_id])
    return bool(existed), dsn[0].queue_id if dsn and existed else ""


async def _items(redis: Redis, ids: list[str]) -> list[QueuedItem]:
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for queue_id in ids:
            pipe.hmget(message_key(queue_id), ["record", "spooled"])
            pipe.hstrlen(message_key(queue_id), "body")
        pipe.zmscore(DEFERRED_SET, ids)
        *fields, scores = await pipe.execute()
    dead = set(await _dead_ids(redis))
    items = []
    for index, queue_id in enumerate(ids):
        (record, spooled), in_memory, score = fields[2 * index], fields[2 * index + 1], scores[index]
        size = int(spooled) if spooled is not None else in_memory
        if not isinstance(record, bytes):
            continue  # settled between the two reads
        state = "deferred" if score is not None else "dead" if queue_id in dead else "active"
        try:
            parsed = QueuedMessage.FromString(record)
        except DecodeError:
            # Shown rather than hidden: a corrupt record is exactly what an operator must see.
            parsed, state = QueuedMessage(queue_id=queue_id), f"{state} (unreadable record)"
        items.append(QueuedItem(parsed, state, int(size), int(score or 0)))
    return await _mark_parked(redis, items)


async def _mark_parked(redis: Redis, items: list[QueuedItem]) -> list[QueuedItem]:
    """Parked messages are in neither the stream nor the deferred set: they look active until asked."""
    active = [index for index, found in enumerate(items) if found.state == "active" and found.record.customer]
    if not active:
        return items
    async with redis.pipeline(transaction=False) as pipe:
        for index in active:
            pipe.zscore(parked_key(items[index].record.customer), items[index].record.queue_id)
        scores = await pipe.execute()
    for index, score in zip(active, scores, strict=True):
        if score is not None:
            items[index] = replace(items[index], state="parked")
    return items


async def _dead_ids(redis: Redis) -> list[str]:
    entries: Any = await redis.xrange(DEAD_STREAM)
    return [_text(fields[b"id"]) for _, fields in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
