"""One delivery attempt of one queued message, and what follows: finish, defer, bounce, warn.

Each step is logged with the queue id, counted, and written to the message's
trace in the same Redis script that settles or defers it (left out, and counted,
when Redis is near its maxmemory). A deferred message's body moves to the
spool (the disk tier) when there is one: committed there first, then let go
of in Redis in the step that defers it, so a crash in between leaves the
Redis copy, which delivery finds, and a spool row the sweep removes.
"""

import asyncio
import logging
import time
from collections import defaultdict

from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient

from smarthost_common.durations import format_duration
from smarthost_common.memory_budget import MemoryBudget
from smarthost_common.queue import StoredBody
from smarthost_common.room import RedisRoom
from smarthost_common.spool import Spool, SpoolError
from smarthost_common.trace import trace_event
from smarthost_delivery.body import BodyUnavailable, MessageBody
from smarthost_delivery.classify import classify
from smarthost_delivery.config import DeliverySettings
from smarthost_delivery.dsn import Action, Report, build_dsn
from smarthost_delivery.holds import HeldCustomers
from smarthost_delivery.metrics import (
    ATTEMPTS,
    BOUNCES,
    DEAD_LETTERED,
    DROPPED,
    DSNS,
    LATENCY,
    MOVED_TO_DISK,
    SPOOL_ERRORS,
    TRACE_DROPPED,
)
from smarthost_delivery.queue_ops import DeliveryQueue, Entry, Loaded, Usage
from smarthost_delivery.retry import next_wait
from smarthost_delivery.smtp_transaction import Outcome
from smarthost_delivery.transport import Destination, DomainTransport

log = logging.getLogger("smarthost.delivery")

Dsn = tuple[QueuedMessage, bytes]

# A message whose body cannot be read now waits this long, without
# counting as an attempt of its destinations.
BODY_RETRY_S = 60
# A first attempt reads a memory-tier body up to this size (its stream entry
# says how large it is) with its record: a round trip less per message, and
# at most this much read ahead of the memory budget per message in flight.
EAGER_BODY_MAX = 256 * 1024


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def destinations(record: QueuedMessage) -> list[Destination]:
    """Recipients still to deliver, one group (one SMTP transaction) per domain."""
    by_domain: dict[str, list[str]] = defaultdict(list)
    for rcpt in record.recipients:
        if not rcpt.done:
            by_domain[recipient_domain(rcpt.address)].append(rcpt.address)
    return [Destination(domain, recipients) for domain, recipients in by_domain.items()]


class MessageProcessor:
    def __init__(
        self,
        queue: DeliveryQueue,
        transport: DomainTransport,
        settings: DeliverySettings,
        spool: Spool | None,
        room: RedisRoom,
        budget: MemoryBudget,
        holds: HeldCustomers,
    ) -> None:
        self._queue = queue
        self._holds = holds
        self._budget = budget
        self._transport = transport
        self._settings = settings
        self._spool = spool
        self._room = room

    def needs_dead_letter_check(self, entry: Entry) -> bool:
        """Handed out often enough that `process` must look at it before reading its message."""
        return entry.deliveries > self._settings.dead_letter_after

    @staticmethod
    def load_request(entry: Entry) -> tuple[str, bool]:
        """What `DeliveryQueue.load` reads for the entry: a body of unknown size (a retry's) waits for DATA."""
        return entry.queue_id, 0 < entry.body_size <= EAGER_BODY_MAX

    async def process(self, entry: Entry) -> None:
        if self.needs_dead_letter_check(entry) and await self._queue.exists(entry.queue_id):
            # Workers kept dying (or failing) on this entry: stop feeding it to
            # them, before even reading it, as reading may be what fails.
            reason = f"handed to workers {entry.deliveries} times without being settled"
            await self._queue.dead_letter(entry, reason)
            DEAD_LETTERED.inc()
            log.error("message moved to the dead-letter stream", extra={"queue_id": entry.queue_id, "reason": reason})
            return
        (loaded,) = await self._queue.load([self.load_request(entry)])
        await self.attempt(entry, loaded)

    async def attempt(self, entry: Entry, loaded: Loaded) -> None:
        """One attempt of a message `DeliveryQueue.load` read (`load_request`), with others or alone."""
        if loaded is None:
            log.info("message already settled or deleted", extra={"queue_id": entry.queue_id})
            await self._queue.drop_entry(entry)
            return
        record, stored, data = loaded
        if self._holds.waits(record) and await self._holds.park(entry, record):
            return
        queue_id = record.queue_id
        body = MessageBody(
            queue_id,
            stored,
            lambda: self._queue.read_body(queue_id),
            self._spool,
            self._budget,
            self._settings.delivery_timeout,
        )
        if data is not None:
            await body.keep(data)
        untouched = record.SerializeToString()
        try:
            await self._settle(entry, record, body, stored)
        except BodyUnavailable as exc:
            # A DSN needed the body and it could not be read: nothing of this
            # attempt is saved, so it is all done again, later.
            SPOOL_ERRORS.labels(op="load").inc()
            log.error("body unreadable; message waits", extra={"queue_id": record.queue_id, "error": str(exc)})
            waiting = QueuedMessage.FromString(untouched)
            waiting.next_attempt_ms = int(time.time() * 1000) + BODY_RETRY_S * 1000
            note = trace_event("body_unavailable", error=str(exc), next_attempt_ms=waiting.next_attempt_ms)
            await self._queue.defer(entry, waiting, [], self._traced([note]))
        finally:
            body.release()

    async def _settle(self, entry: Entry, record: QueuedMessage, body: MessageBody, stored: StoredBody) -> None:
        trace: list[str] = []
        failed, delivered = await self._attempt(record, body, trace)
        now_ms = int(time.time() * 1000)
        expiry_ms = record.received_at_ms + int(self._settings.max_queue_lifetime * 1000)
        dsns: list[Dsn] = []
        expired = now_ms >= expiry_ms
        if expired:
            for rcpt in record.recipients:
                if not rcpt.done:
                    rcpt.done = rcpt.bounced = True
                    failed.append(rcpt)
        if failed:
            reason = f"the queue lifetime of {format_duration(self._settings.max_queue_lifetime)} passed"
            dsns += await self._report(record, body, "failed", failed, trace, reason if expired else "")
        if all(rcpt.done for rcpt in record.recipients):
            bounced = sum(rcpt.bounced for rcpt in record.recipients)
            settled = {"delivered": len(record.recipients) - bounced, "bounced": bounced, "attempts": record.attempts}
            trace.append(trace_event("settled", **settled))
            usage = _usage(record, delivered, len(failed))
            if await self._queue.finish(entry, dsns, self._traced(trace), usage) and self._spool:
                await self._forget_spooled(record.queue_id)
            log.info("message settled", extra={"queue_id": record.queue_id, **settled})
            return
        wait = next_wait(self._settings.retry_schedule, record.attempts)
        # One last attempt when the lifetime runs out, not a wait beyond it.
        record.next_attempt_ms = min(now_ms + int(wait * 1000), expiry_ms)
        warning = self._settings.delay_warning
        if warning and not record.delay_warned and now_ms - record.received_at_ms >= warning * 1000:
            pending = [rcpt for rcpt in record.recipients if not rcpt.done]
            dsns += await self._report(record, body, "delayed", pending, trace, retry_until_ms=expiry_ms)
            record.delay_warned = True
        trace.append(trace_event("deferred", next_attempt_ms=record.next_attempt_ms, attempts=record.attempts))
        spooled = await self._move_to_disk(record.queue_id, body, stored)
        usage = _usage(record, delivered, len(failed))
        await self._queue.defer(entry, record, dsns, self._traced(trace), spooled, usage)
        log.info(
            "message deferred",
            extra={
                "queue_id": record.queue_id,
                "wait_s": (record.next_attempt_ms - now_ms) / 1000,
                "attempts": record.attempts,
                "tier": "disk" if stored.spooled or spooled else "memory",
            },
        )

    async def _move_to_disk(self, queue_id: str, body: MessageBody, stored: StoredBody) -> StoredBody | None:
        """Commit a deferred body held in Redis to the spool; the stored body when it is there now.

        Deferred mail waits minutes to days: that is what fills Redis when a
        destination is down, so it waits on disk. Without a spool, or with
        the spool down, it stays in Redis and moves at a later deferral.
        """
        if self._spool is None or stored.spooled or not self._spool.available:
            return None
        try:
            await self._spool.store(queue_id, await body.read())
        except (SpoolError, BodyUnavailable) as exc:
            SPOOL_ERRORS.labels(op="store").inc()
            log.warning("body not moved to the spool", extra={"queue_id": queue_id, "error": str(exc)})
            return None
        MOVED_TO_DISK.inc()
        return stored

    async def _forget_spooled(self, queue_id: str) -> None:
        assert self._spool is not None
        try:
            await self._spool.delete([queue_id])
        except SpoolError as exc:
            # Redis no longer points at the row: the sweep removes it later.
            SPOOL_ERRORS.labels(op="delete").inc()
            log.warning("spool row left for the sweep", extra={"queue_id": queue_id, "error": str(exc)})

    def _traced(self, trace: list[str]) -> list[str]:
        """The events to write, none when Redis is near its maxmemory: settling comes first."""
        if self._room.tight and trace:
            TRACE_DROPPED.inc(len(trace))
            return []
        return trace

    async def _attempt(self, record: QueuedMessage, body: MessageBody, trace: list[str]) -> tuple[list[Recipient], int]:
        """Every domain at once; each recipient's result is written into the record and the trace.

        Returns the recipients that failed permanently in this attempt, and how many were delivered.
        """
        groups = destinations(record)
        deliver = self._transport.deliver
        if len(groups) == 1:
            # Most mail has one destination: no task of its own for it.
            results = [await deliver(groups[0], record.mail_from, body)]
        else:
            results = await asyncio.gather(*(deliver(destination, record.mail_from, body) for destination in groups))
        outcomes: dict[str, Outcome] = {}
        for result in results:
            outcomes.update(result)
        record.attempts += 1
        record.last_attempt_ms = int(time.time() * 1000)
        bounced: list[Recipient] = []
        delivered = 0
        for rcpt in record.recipients:
            outcome = outcomes.get(rcpt.address)
            if outcome is None or rcpt.done:
                continue
            verdict = "delivered" if outcome.delivered else "bounced" if outcome.permanent else "deferred"
            ATTEMPTS.labels(result=verdict).inc()
            if outcome.delivered:
                delivered += 1
                LATENCY.observe(max(0.0, record.last_attempt_ms - record.received_at_ms) / 1000)
            fields = {
                "to": rcpt.address,
                "result": verdict,
                "remote": outcome.remote,
                "reply": outcome.reply,
                "attempt": record.attempts,
            }
            trace.append(trace_event("attempt", **fields))
            log.info("delivery attempt", extra={"queue_id": record.queue_id, **fields})
            rcpt.remote_mta = outcome.remote
            rcpt.last_error = "" if outcome.delivered else outcome.reply
            rcpt.done = outcome.delivered or outcome.permanent
            rcpt.bounced = outcome.permanent
            if outcome.permanent:
                bounced.append(rcpt)
        return bounced, delivered

    async def _report(
        self,
        record: QueuedMessage,
        body: MessageBody,
        action: Action,
        recipients: list[Recipient],
        trace: list[str],
        reason: str = "",
        retry_until_ms: int = 0,
    ) -> list[Dsn]:
        if action == "failed":
            for rcpt in recipients:
                BOUNCES.labels(category=classify(rcpt.last_error).category).inc()
        if not record.mail_from:
            # RFC 3464 / RFC 5321 6.1: never a DSN about a DSN (sender <>).
            for rcpt in recipients:
                if action == "failed":
                    DROPPED.labels(reason="bounce_without_sender").inc()
                    trace.append(trace_event("dropped", to=rcpt.address, reason="no DSN to the null sender"))
                    log.warning(
                        "undeliverable message from <> dropped without DSN",
                        extra={"queue_id": record.queue_id, "to": rcpt.address, "error": rcpt.last_error},
                    )
            return []
        report = Report(action, recipients, reason, retry_until_ms)
        dsn = build_dsn(record, await body.read(), report, self._settings.hostname)
        DSNS.labels(action=action).inc()
        trace.append(
            trace_event(
                "dsn", action=action, dsn_queue_id=dsn[0].queue_id, recipients=[rcpt.address for rcpt in recipients]
            )
        )
        log.info(
            "DSN queued",
            extra={
                "queue_id": record.queue_id,
                "dsn_queue_id": dsn[0].queue_id,
                "action": action,
                "nrcpt": len(recipients),
            },
        )
        return [dsn]


def _usage(record: QueuedMessage, delivered: int, bounced: int) -> Usage | None:
    """Recipients delivered or bounced in this attempt, counted for the customer who sent them.

    Only mail a customer host sent (it has a client IP), not the DSNs the relay wrote itself.
    """
    if not record.customer or not record.client_ip or not (delivered or bounced):
        return None
    return Usage(record.customer, delivered, bounced)
