"""The mail queue in Redis, as both the ingress (writer) and delivery (reader) see it.

Each message is a hash `smarthost:msg:<queue id>` holding the protobuf record
and the raw message bytes; the ready stream carries only queue ids, so a
message's bytes are written once however often it is retried. The index holds
every queued message by arrival time, so operators can list the queue and see
its oldest message without scanning keys.
"""

import secrets
import time

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common.trace import add_trace, trace_event

READY_STREAM = "smarthost:queue:ready"
DELIVERY_GROUP = "delivery"
DEFERRED_SET = "smarthost:queue:deferred"
# Entries whose delivery kept crashing workers, parked for an operator.
DEAD_STREAM = "smarthost:queue:dead"
QUEUE_INDEX = "smarthost:queue:index"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def message_key(queue_id: str) -> str:
    return f"smarthost:msg:{queue_id}"


def new_queue_id() -> str:
    """16 characters, sortable by time: 48 bits of milliseconds, 32 random bits."""
    value = (int(time.time() * 1000) << 32) | secrets.randbits(32)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(75, -1, -5))


async def enqueue(redis: Redis, record: QueuedMessage, body: bytes | bytearray, **trace: object) -> None:
    """Store the message and announce it to delivery in one MULTI/EXEC.

    Either both happen or neither does, so a message is never announced
    without its bytes, nor stored where no worker will find it.
    """
    async with redis.pipeline(transaction=True) as pipe:
        add_to_queue(pipe, record, body, **trace)
        await pipe.execute()


def add_to_queue(pipe: Pipeline, record: QueuedMessage, body: bytes | bytearray, **trace: object) -> None:
    """The commands of `enqueue`, for callers that settle other things in the same MULTI.

    `trace` adds fields to the message's first trace event (its size, or the message a DSN reports on).
    """
    pipe.hset(message_key(record.queue_id), mapping={"record": record.SerializeToString(), "body": body})
    pipe.zadd(QUEUE_INDEX, {record.queue_id: record.received_at_ms})
    pipe.xadd(READY_STREAM, {"id": record.queue_id})
    queued = trace_event(
        "queued",
        client_ip=record.client_ip,
        helo=record.helo,
        customer=record.customer,
        mail_from=record.mail_from,
        recipients=[rcpt.address for rcpt in record.recipients],
        **trace,
    )
    add_trace(pipe, record.queue_id, queued)
