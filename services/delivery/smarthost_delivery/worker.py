"""The delivery loop: read the ready stream, deliver per domain, settle or defer."""

import asyncio
import logging
import time
from collections import defaultdict

from prometheus_client import Counter
from redis.exceptions import RedisError
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_delivery.config import DeliverySettings
from smarthost_delivery.queue_ops import DeliveryQueue, Entry
from smarthost_delivery.retry import next_wait
from smarthost_delivery.transport import DomainTransport, Outcome

log = logging.getLogger("smarthost.delivery")

ATTEMPTS = Counter("smarthost_delivery_attempts_total", "Delivery attempts per recipient by result", ["result"])

CLAIM_EVERY = 30.0


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Worker:
    def __init__(self, queue: DeliveryQueue, transport: DomainTransport, settings: DeliverySettings) -> None:
        self._queue = queue
        self._transport = transport
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        await self._queue.ensure_group()
        last_claim = 0.0
        while not stop.is_set():
            free = self._settings.delivery_concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                await self._queue.promote_due(int(time.time() * 1000))
                entries: list[Entry] = []
                if time.monotonic() - last_claim > CLAIM_EVERY:
                    last_claim = time.monotonic()
                    entries = await self._queue.claim_abandoned(int(self._settings.claim_idle * 1000), free)
                if not entries:
                    entries = await self._queue.read(free, block_ms=1000)
            except (RedisError, OSError) as exc:
                log.error("queue unreachable", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                continue
            for entry in entries:
                task = asyncio.create_task(self._process(*entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        # SIGTERM: finish what is in flight; what is not settled stays pending
        # in the stream for another worker to claim.
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _process(self, entry_id: str, queue_id: str) -> None:
        try:
            loaded = await self._queue.load(queue_id)
            if loaded is None:
                log.info("message already settled", extra={"queue_id": queue_id})
                await self._queue.drop_entry(entry_id)
                return
            record, body = loaded
            await self._attempt(record, body)
            if all(rcpt.done for rcpt in record.recipients):
                await self._queue.finish(entry_id, queue_id)
                log.info("message settled", extra={"queue_id": queue_id, "attempts": record.attempts})
            elif time.time() * 1000 - record.received_at_ms > self._settings.max_queue_lifetime * 1000:
                for rcpt in record.recipients:
                    if not rcpt.done:
                        log.warning(
                            "giving up: queue lifetime passed",
                            extra={"queue_id": queue_id, "to": rcpt.address, "error": rcpt.last_error},
                        )
                        ATTEMPTS.labels(result="expired").inc()
                await self._queue.finish(entry_id, queue_id)
            else:
                wait = next_wait(self._settings.retry_schedule, record.attempts)
                record.next_attempt_ms = int((time.time() + wait) * 1000)
                await self._queue.defer(entry_id, record)
                log.info("message deferred", extra={"queue_id": queue_id, "wait_s": wait, "attempts": record.attempts})
        except (RedisError, OSError) as exc:
            # Left pending: another worker claims it once it has been idle.
            log.error("queue error; entry left pending", extra={"queue_id": queue_id, "error": str(exc)})
        except Exception:
            log.exception("delivery failed unexpectedly; entry left pending", extra={"queue_id": queue_id})

    async def _attempt(self, record: QueuedMessage, body: bytes) -> None:
        by_domain: dict[str, list[str]] = defaultdict(list)
        for rcpt in record.recipients:
            if not rcpt.done:
                by_domain[recipient_domain(rcpt.address)].append(rcpt.address)
        domains = list(by_domain)
        results = await asyncio.gather(
            *(self._transport.deliver(domain, record.mail_from, by_domain[domain], body) for domain in domains)
        )
        outcomes: dict[str, Outcome] = {}
        for result in results:
            outcomes.update(result)
        record.attempts += 1
        for rcpt in record.recipients:
            outcome = outcomes.get(rcpt.address)
            if outcome is None:
                continue
            verdict = "delivered" if outcome.delivered else "bounced" if outcome.permanent else "deferred"
            ATTEMPTS.labels(result=verdict).inc()
            log.info(
                "delivery attempt",
                extra={
                    "queue_id": record.queue_id,
                    "to": rcpt.address,
                    "result": verdict,
                    "remote": outcome.remote,
                    "reply": f"{outcome.code} {outcome.text}",
                    "attempt": record.attempts,
                },
            )
            rcpt.done = outcome.delivered or outcome.permanent
            rcpt.last_error = "" if outcome.delivered else f"{outcome.code} {outcome.text}"
