"""Delivery's part of the reputation breaker: a held or suspended customer's mail waits, parked.

A worker keeps the held and suspended customers in memory, refreshed about
once a second. A message of one of them that comes up for delivery is
parked instead of attempted: its stream entry leaves, its id goes to
`smarthost:reputation:parked:<customer>` (a sorted set by time parked), in
one script that checks the customer is still held or suspended and that
this worker still holds the entry. A parked message is never attempted,
bounced, expired or dropped. Every few seconds a worker moves the parked
mail of customers no longer held or suspended back to the ready stream;
`smarthostctl customer release` does it at once.
`smarthost:reputation:parking` is the set of customers with parked mail.
"""

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Gauge
from redis.asyncio import Redis
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common import reputation
from smarthost_common.queue import DELIVERY_GROUP, LUA_LIB, READY_STREAM, run_script
from smarthost_common.trace import TRACE_MAX_EVENTS, TRACE_TTL, trace_event, trace_key
from smarthost_delivery.queue_ops import Entry

log = logging.getLogger("smarthost.delivery")

PARKING = f"{reputation.PREFIX}parking"
REFRESH_EVERY = 1.0
SWEEP_EVERY = 5.0
# Parked messages moved to the ready stream per script call.
RELEASE_BATCH = 500

HELD = Gauge("smarthost_customers_held", "Customers held by the reputation breaker or an operator")
PARKED = Gauge("smarthost_reputation_parked_messages", "Messages parked while their customer is held or suspended")

# KEYS: ready stream, parked set, parking, held, suspended, trace
# ARGV: group, entry id, consumer, customer, queue id, now ms, trace max events, trace ttl, trace event
# Returns 1 when parked, 0 when the customer is neither held nor suspended, -1 when the entry is not this worker's.
PARK = (
    "#!lua flags=allow-oom\n"
    + LUA_LIB
    + """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 or pending[1][2] ~= ARGV[3] then return -1 end
if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 0 and redis.call('SISMEMBER', KEYS[5], ARGV[4]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[4])
append_trace(KEYS[6], ARGV[7], ARGV[8], {ARGV[9]})
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
)

# Up to ARGV[2] parked messages of a customer neither held nor suspended back to the ready stream.
# KEYS: parked set, parking, held, suspended, ready stream; ARGV: customer, batch. -1 while still held.
RELEASE = """#!lua flags=allow-oom
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 or redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return -1 end
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do redis.call('XADD', KEYS[5], '*', 'id', id) end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return #ids
"""


def parked_key(customer: str) -> str:
    return f"{reputation.PREFIX}parked:{customer}"


async def release_parked(redis: Redis, customer: str) -> int:
    """Move the customer's parked mail to the ready stream; -1 when it is still held or suspended."""
    keys = [parked_key(customer), PARKING, reputation.HELD, reputation.SUSPENDED, READY_STREAM]
    moved = 0
    while True:
        batch = int(await run_script(redis, RELEASE, keys, [customer, RELEASE_BATCH]))
        if batch < 0:
            return moved or -1
        moved += batch
        if batch < RELEASE_BATCH:
            return moved


async def parked_counts(redis: Redis) -> dict[str, int]:
    """Parked messages per customer that has any."""
    customers = sorted(_text(name) for name in await redis.smembers(PARKING))
    async with redis.pipeline(transaction=False) as pipe:
        for customer in customers:
            pipe.zcard(parked_key(customer))
        found: list[Any] = await pipe.execute()
    return {customer: int(count) for customer, count in zip(customers, found, strict=True) if count}


class HeldCustomers:
    def __init__(self, redis: Redis, consumer: str) -> None:
        self._redis = redis
        self._consumer = consumer
        # Customers whose mail is parked: held (breaker or operator) or suspended in the policy.
        self._waiting: frozenset[str] = frozenset()

    def waits(self, record: QueuedMessage) -> bool:
        """Whether this message is to be parked; only mail a customer host sent, not the relay's own DSNs."""
        return bool(record.client_ip) and record.customer in self._waiting

    async def park(self, entry: Entry, record: QueuedMessage) -> bool:
        """Park the message; False when its customer is no longer held or suspended (deliver it)."""
        customer = record.customer
        event = trace_event("parked", customer=customer)
        parked = await run_script(
            self._redis,
            PARK,
            [
                READY_STREAM,
                parked_key(customer),
                PARKING,
                reputation.HELD,
                reputation.SUSPENDED,
                trace_key(entry.queue_id),
            ],
            [
                DELIVERY_GROUP,
                entry.entry_id,
                self._consumer,
                customer,
                entry.queue_id,
                int(time.time() * 1000),
                TRACE_MAX_EVENTS,
                TRACE_TTL,
                event,
            ],
        )
        if parked == 1:
            log.info("message parked, its customer is held", extra={"queue_id": entry.queue_id, "customer": customer})
        elif parked == -1:
            log.info("entry taken over by another worker", extra={"queue_id": entry.queue_id})
        return bool(parked)

    async def refresh(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hkeys(reputation.HELD)
            pipe.smembers(reputation.SUSPENDED)
            held, suspended = await pipe.execute()
        HELD.set(len(held))
        self._waiting = frozenset(_text(name) for name in [*held, *suspended])

    async def sweep(self) -> None:
        """Release the parked mail of customers no longer held or suspended; set the parked gauge."""
        parked = await parked_counts(self._redis)
        for customer in parked:
            if customer not in self._waiting:
                moved = await release_parked(self._redis, customer)
                if moved > 0:
                    log.info("parked messages released", extra={"customer": customer, "messages": moved})
                    parked[customer] = max(0, parked[customer] - moved)
        PARKED.set(sum(parked.values()))

    async def run(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await self.refresh()
                if time.monotonic() - last_sweep >= SWEEP_EVERY:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except Exception as exc:
                # Kept running whatever fails: parked mail depends on this loop to leave.
                log.error("held customers not refreshed", extra={"error": repr(exc)})
            await asyncio.sleep(REFRESH_EVERY)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
