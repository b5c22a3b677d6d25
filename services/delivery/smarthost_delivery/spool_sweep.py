"""Removes spool rows no queued message points at.

A crash between committing a body to the spool and the Redis step that
points the message at it (or after a message was settled, before its row was
deleted) leaves a row nobody reads. Rows younger than `GRACE_S` are never
touched: a move or an ingress write may be between its two steps.
"""

from redis.asyncio import Redis

from smarthost_common.queue import TIERS, message_key
from smarthost_common.spool import Spool

GRACE_S = 600.0
PAGE = 500


async def sweep(spool: Spool, redis: Redis) -> int:
    """Rows removed. Nothing is removed when Redis holds no queue at all (an empty or wrong Redis)."""
    if not await redis.exists(TIERS):
        return 0
    removed, after = 0, ""
    while ids := await spool.stale(GRACE_S, after, PAGE):
        async with redis.pipeline(transaction=False) as pipe:
            for queue_id in ids:
                pipe.hexists(message_key(queue_id), "spooled")
            pointed = await pipe.execute()
        orphans = [queue_id for queue_id, used in zip(ids, pointed, strict=True) if not used]
        await spool.delete(orphans)
        removed += len(orphans)
        after = ids[-1]
    return removed
