"""A message's history in Redis, for `smarthostctl trace QUEUE_ID`.

A list `smarthost:trace:<queue id>` of JSON events, appended by whoever
changes the message's state, in the same step (script or MULTI) as the
change where there is one. Capped, and kept for `TRACE_TTL` after its last event, so a settled
message can still be traced for a week while nothing grows without bound.
"""

import json
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

TRACE_TTL = 7 * 86400
# Events kept per message: enough for days of retries, small enough to ignore.
TRACE_MAX_EVENTS = 200
# Built once: json.dumps with options builds a new encoder for every event.
_ENCODER = json.JSONEncoder(default=str)


def trace_key(queue_id: str) -> str:
    return f"smarthost:trace:{queue_id}"


def trace_event(event: str, **fields: object) -> str:
    """One event as stored: its name, the time (Unix ms) and its fields."""
    return _ENCODER.encode({"ts_ms": int(time.time() * 1000), "event": event, **fields})


def add_trace(pipe: Pipeline, queue_id: str, *events: str) -> None:
    """Append `events` (from `trace_event`) to the message's history, within the caller's pipeline."""
    if not events:
        return
    key = trace_key(queue_id)
    pipe.rpush(key, *events)
    pipe.ltrim(key, -TRACE_MAX_EVENTS, -1)
    pipe.expire(key, TRACE_TTL)


async def read_trace(redis: Redis, queue_id: str) -> list[dict[str, Any]]:
    found = await redis.lrange(trace_key(queue_id), 0, -1)
    events = []
    for raw in found:
        try:
            events.append(json.loads(raw))
        except ValueError:
            # Shown, not hidden: an operator should see that something odd was written.
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            events.append({"ts_ms": 0, "event": "unreadable", "raw": text})
    return events
