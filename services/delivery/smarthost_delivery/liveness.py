"""Workers prove they are alive; a dead worker's in-flight mail is taken over in seconds.

Each worker keeps `smarthost:consumer:<name>` alive with a TTL
(`SMARTHOST_HEARTBEAT_TTL`), refreshed three times per TTL, and resets the
idle time of the entries it is delivering as often. Every few seconds each
worker looks at the consumer group: a consumer with pending entries and no
heartbeat has stopped (SIGKILL, OOM kill, node lost), and its entries are
claimed with the TTL as minimum idle time, so an entry a live worker touched
within the TTL is never taken from it. A worker that restarts with the same
name (a container restarted in its pod) finds its own pending entries and
delivers them at once.
"""

import time
from typing import Any

from redis.asyncio import Redis

from smarthost_common.queue import DELIVERY_GROUP, READY_STREAM
from smarthost_delivery.queue_ops import Entry, text

FORGET_AFTER_MS = 3600_000
# A failed settle is retried by its own worker this long after, not at once.
RESCAN_DELAY = 2.0


def consumer_key(name: str) -> str:
    return f"smarthost:consumer:{name}"


class Liveness:
    def __init__(self, redis: Redis, name: str, ttl: float) -> None:
        self._redis = redis
        self._name = name
        self._ttl_ms = int(ttl * 1000)
        # Where the scan of this worker's own pending entries goes on (after a restart,
        # or after an entry was left pending); None when there is nothing to scan for.
        self._own_cursor: str | None = "0-0"
        self._scan_after = 0.0

    async def beat(self) -> None:
        await self._redis.set(consumer_key(self._name), int(time.time() * 1000), px=self._ttl_ms)

    async def leave(self) -> None:
        """A clean exit: the heartbeat goes, and the consumer too when nothing of it is pending.

        Entries left pending (a failed settle) stay with the name, for its next life or a takeover:
        deleting a consumer deletes its pending entries from the group.
        """
        await self._redis.delete(consumer_key(self._name))
        mine: Any = await self._redis.xpending_range(
            READY_STREAM, DELIVERY_GROUP, min="-", max="+", count=1, consumername=self._name
        )
        if not mine:
            await self._redis.xgroup_delconsumer(READY_STREAM, DELIVERY_GROUP, self._name)

    def rescan_soon(self) -> None:
        """An entry was left pending (Redis went away mid-settle): take it up again shortly."""
        self._own_cursor = "0-0"
        self._scan_after = time.monotonic() + RESCAN_DELAY

    async def own_pending(self, count: int, held: set[str]) -> list[Entry]:
        """Entries the group handed to this name and it does not hold, `count` at a time until none is left.

        After a restart those are what the previous life held; later, what
        a failed settle left pending. Claimed again by this name, which
        counts a delivery: a message that keeps failing still ends in the
        dead-letter stream.
        """
        if self._own_cursor is None or time.monotonic() < self._scan_after:
            return []
        start = "-" if self._own_cursor == "0-0" else f"({self._own_cursor}"
        pending: Any = await self._redis.xpending_range(
            READY_STREAM, DELIVERY_GROUP, min=start, max="+", count=count, consumername=self._name
        )
        if not pending:
            self._own_cursor = None
            return []
        self._own_cursor = text(pending[-1]["message_id"])
        return await self._claim([item for item in pending if text(item["message_id"]) not in held], 0)

    async def take_over(self, count: int) -> list[Entry]:
        """Up to `count` entries of consumers whose heartbeat has run out; consumers left empty are removed."""
        consumers: Any = await self._redis.xinfo_consumers(READY_STREAM, DELIVERY_GROUP)
        others = [consumer for consumer in consumers if text(consumer["name"]) != self._name]
        if not others:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for consumer in others:
                pipe.exists(consumer_key(text(consumer["name"])))
            alive = await pipe.execute()
        taken: list[Entry] = []
        for consumer, beating in zip(others, alive, strict=True):
            name = text(consumer["name"])
            if beating:
                continue
            if not int(consumer["pending"]):
                # Long gone (pods come and go with new names): forget it. Not sooner: a worker
                # coming back under this name between our two reads must keep what it reads.
                if int(consumer["idle"]) > FORGET_AFTER_MS:
                    await self._redis.xgroup_delconsumer(READY_STREAM, DELIVERY_GROUP, name)
                continue
            if len(taken) < count:
                pending: Any = await self._redis.xpending_range(
                    READY_STREAM, DELIVERY_GROUP, min="-", max="+", count=count - len(taken), consumername=name
                )
                taken += await self._claim(pending, self._ttl_ms)
        return taken

    async def _claim(self, pending: list[Any], min_idle_ms: int) -> list[Entry]:
        """XCLAIM the XPENDING items to this worker; entries deleted meanwhile are acked and skipped."""
        if not pending:
            return []
        times = {text(item["message_id"]): int(item["times_delivered"]) for item in pending}
        claimed: Any = await self._redis.xclaim(
            READY_STREAM, DELIVERY_GROUP, self._name, min_idle_time=min_idle_ms, message_ids=list(times)
        )
        entries = []
        for entry_id, fields in claimed:
            entry_id = text(entry_id)
            if not fields:
                await self._redis.xack(READY_STREAM, DELIVERY_GROUP, entry_id)
                continue
            entries.append(Entry.of(entry_id, fields, times[entry_id] + 1))
        return entries
