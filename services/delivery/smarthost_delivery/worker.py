"""The delivery loop: promote due messages, claim abandoned ones, read the ready stream, deliver.

Beside it runs upkeep: the worker's heartbeat and the claim on entries in
flight (so a slow destination never makes them look abandoned), closing idle
connections, the queue gauges, and the sweep of spool rows no message
points at. A worker resumes its own pending entries first (after a restart
under the same name), and takes over those of workers whose heartbeat ran
out (liveness.py).
"""

import asyncio
import logging
import time
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from smarthost_common.queue import tier_counts
from smarthost_common.spool import Spool, SpoolError
from smarthost_delivery.config import DeliverySettings
from smarthost_delivery.connections import ConnectionPool
from smarthost_delivery.liveness import Liveness
from smarthost_delivery.metrics import (
    CLAIMED,
    OLDEST_AGE,
    QUEUE_BYTES,
    QUEUE_MESSAGES,
    QUEUE_TIER_MESSAGES,
    SPOOL_ERRORS,
)
from smarthost_delivery.processor import MessageProcessor
from smarthost_delivery.queue_admin import counts
from smarthost_delivery.queue_ops import DeliveryQueue, Entry, Loaded
from smarthost_delivery.spool_sweep import sweep

log = logging.getLogger("smarthost.delivery")

# Look for entries idle past SMARTHOST_CLAIM_IDLE at least this often (more often when it is short).
CLAIM_EVERY = 30.0
# Move due deferred messages back this often: retries are minutes apart, so a
# second's lateness costs nothing, and a busy worker's reads skip the script.
PROMOTE_EVERY = 1.0
# Orphaned spool rows are rare (a crash between two steps) and harmless until removed.
SWEEP_EVERY = 300.0


class Worker:
    def __init__(
        self,
        redis: Redis,
        queue: DeliveryQueue,
        processor: MessageProcessor,
        pool: ConnectionPool,
        settings: DeliverySettings,
        spool: Spool | None,
    ) -> None:
        self._redis = redis
        self._spool = spool
        self._queue = queue
        self._processor = processor
        self._pool = pool
        self._settings = settings
        self._liveness = Liveness(redis, settings.consumer_name, settings.heartbeat_ttl)
        self._tasks: set[asyncio.Task[None]] = set()
        # Stream entry ids being delivered by this process.
        self._held: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        await self._queue.ensure_group()
        # Alive before reading anything, so nobody takes over what this worker is handed.
        await self._liveness.beat()
        upkeep = asyncio.create_task(self._upkeep())
        claim_every = min(CLAIM_EVERY, self._settings.claim_idle / 2)
        takeover_every = self._settings.heartbeat_ttl / 3
        last_claim = last_promote = last_takeover = 0.0
        while not stop.is_set():
            free = self._settings.delivery_concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                now = time.monotonic()
                if now - last_promote >= PROMOTE_EVERY:
                    last_promote = now
                    await self._queue.promote_due(int(time.time() * 1000))
                entries = await self._liveness.own_pending(free, self._held)
                if not entries and now - last_takeover >= takeover_every:
                    last_takeover = now
                    entries = self._claimed(await self._liveness.take_over(free), "a stopped worker's entry")
                if not entries and now - last_claim > claim_every:
                    last_claim = now
                    idle_ms = int(self._settings.claim_idle * 1000)
                    entries = self._claimed(await self._queue.claim_abandoned(idle_ms, free), "an idle entry")
                if not entries:
                    entries = await self._queue.read(free, block_ms=1000)
            except (RedisError, OSError) as exc:
                log.error("queue unreachable", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                continue
            await self._start_all(entries)
        # SIGTERM: finish the transactions in flight and settle them; the
        # upkeep keeps their claim fresh meanwhile.
        if self._tasks:
            log.info("draining", extra={"in_flight": len(self._tasks)})
            await asyncio.wait(self._tasks)
        upkeep.cancel()
        with suppress(asyncio.CancelledError):
            await upkeep
        await self._pool.close_all()
        with suppress(RedisError, OSError):
            await self._liveness.leave()

    @staticmethod
    def _claimed(entries: list[Entry], what: str) -> list[Entry]:
        CLAIMED.inc(len(entries))
        for entry in entries:
            log.warning(f"claimed {what}", extra={"queue_id": entry.queue_id, "deliveries": entry.deliveries})
        return entries

    async def _start_all(self, entries: list[Entry]) -> None:
        """The messages of several entries are read in one round trip; each attempt is a task of its own.

        An entry handed out too often is looked at before its message is read;
        when the read fails (Redis, or a record that does not parse), each
        attempt reads its own message, and fails on its own.
        """
        processor = self._processor
        batch = [entry for entry in entries if not processor.needs_dead_letter_check(entry)]
        loaded: list[Loaded] = []
        if len(batch) > 1:
            try:
                loaded = await self._queue.load([processor.load_request(entry) for entry in batch])
            except Exception:
                loaded = []
        read = set(batch) if loaded else set()
        for entry, message in zip(batch if loaded else [], loaded, strict=True):
            self._start(entry, processor.attempt(entry, message))
        for entry in entries:
            if entry not in read:
                self._start(entry, processor.process(entry))

    def _start(self, entry: Entry, attempt: Coroutine[Any, Any, None]) -> None:
        self._held.add(entry.entry_id)
        task = asyncio.create_task(self._process(entry, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, entry: Entry, attempt: Coroutine[Any, Any, None]) -> None:
        try:
            await attempt
        except (RedisError, OSError) as exc:
            # Left pending under this worker's name, which takes it up again in a moment.
            log.error("queue error; entry left pending", extra={"queue_id": entry.queue_id, "error": str(exc)})
            self._liveness.rescan_soon()
        except Exception:
            # Left pending too, and taken up again; if it keeps failing it ends in the dead-letter stream.
            log.exception("delivery failed unexpectedly; entry left pending", extra={"queue_id": entry.queue_id})
            self._liveness.rescan_soon()
        finally:
            self._held.discard(entry.entry_id)

    async def _upkeep(self) -> None:
        # The heartbeat and the entries' idle time are refreshed together, well within the TTL.
        keep_every = min(self._settings.claim_idle, self._settings.heartbeat_ttl) / 3
        gauge_every = self._settings.queue_metrics_interval
        last_keep = last_sweep = time.monotonic()
        # The queue gauges are set at once, then every `gauge_every`.
        last_gauge = last_keep - gauge_every
        while True:
            await asyncio.sleep(min(1.0, keep_every))
            now = time.monotonic()
            try:
                await self._pool.sweep()
                if now - last_keep >= keep_every:
                    last_keep = now
                    await self._liveness.beat()
                    await self._queue.keep(list(self._held))
                if now - last_gauge >= gauge_every:
                    last_gauge = now
                    await self._update_gauge()
                if self._spool and now - last_sweep >= SWEEP_EVERY:
                    last_sweep = now
                    await self._sweep(self._spool)
            except (RedisError, OSError) as exc:
                log.error("queue upkeep failed", extra={"error": str(exc)})

    async def _sweep(self, spool: Spool) -> None:
        try:
            removed = await sweep(spool, self._redis)
        except SpoolError as exc:
            SPOOL_ERRORS.labels(op="sweep").inc()
            log.warning("spool sweep failed", extra={"error": str(exc)})
            return
        if removed:
            log.info("orphaned spool rows removed", extra={"rows": removed})

    async def _update_gauge(self) -> None:
        seen = await counts(self._redis)
        for state in ("ready", "in_flight", "deferred", "dead"):
            QUEUE_MESSAGES.labels(state=state).set(getattr(seen, state))
        OLDEST_AGE.set(seen.oldest_age_s)
        tiers = await tier_counts(self._redis)
        for tier in ("memory", "disk"):
            QUEUE_BYTES.labels(tier=tier).set(getattr(tiers, f"{tier}_bytes"))
            QUEUE_TIER_MESSAGES.labels(tier=tier).set(getattr(tiers, f"{tier}_messages"))
