"""`smarthostctl trace QUEUE_ID`: a message's story from Redis, from its 250 to its end.

The trace (smarthost_common.trace) outlives the message by a week; where the
message still is in the queue, its current state is shown above it.
"""

import argparse
import sys
from typing import Any

from redis.asyncio import Redis

from smarthost_common.settings import ServiceSettings
from smarthost_common.trace import read_trace
from smarthost_delivery import queue_admin
from smarthost_delivery.ctl.output import common_flags, print_json
from smarthost_delivery.ctl.tables import timestamp, until

# Shown first on an event's line, in this order; other fields follow as key=value.
LEADING = ("to", "result", "remote", "reply", "action", "dsn_queue_id", "next_attempt_ms")


def register(areas: Any) -> None:
    tracing = areas.add_parser("trace", parents=[common_flags()], help="a message's states and delivery attempts")
    tracing.add_argument("queue_id")
    tracing.set_defaults(handler=trace)


async def trace(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    events = await read_trace(redis, args.queue_id)
    item = await queue_admin.item(redis, args.queue_id)
    if not events and item is None:
        print(f"smarthostctl: no trace of {args.queue_id} (unknown, or settled more than a week ago)", file=sys.stderr)
        return 1
    state = item.state if item else "not in the queue"
    if args.json:
        print_json(
            {
                "queue_id": args.queue_id,
                "state": state,
                "next_attempt_ms": item.next_attempt_ms if item else 0,
                "events": events,
            }
        )
        return 0
    if item and item.state == "deferred":
        state += f" (next attempt {until(item.next_attempt_ms)})"
    print(f"queue id:  {args.queue_id}")
    print(f"state:     {state}")
    for event in events:
        print(f"{timestamp(int(event.get('ts_ms', 0)))}  {event.get('event', '?'):<13} {_details(event)}".rstrip())
    return 0


def _details(event: dict[str, Any]) -> str:
    fields = {key: value for key, value in event.items() if key not in ("ts_ms", "event")}
    if "next_attempt_ms" in fields:
        fields["next_attempt_ms"] = timestamp(int(fields["next_attempt_ms"]))
    ordered = [key for key in LEADING if key in fields] + [key for key in fields if key not in LEADING]
    return " ".join(f"{key}={_value(fields[key])}" for key in ordered if fields[key] not in ("", None, []))


def _value(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    text = str(value)
    return f'"{text}"' if " " in text else text
