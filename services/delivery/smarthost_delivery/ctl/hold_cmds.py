"""`smarthostctl customer hold|release NAME`, and the breaker's part of `customer stats`."""

import argparse
import sys
from typing import Any

from redis.asyncio import Redis

from smarthost_common import reputation
from smarthost_common.durations import format_duration
from smarthost_common.settings import ServiceSettings
from smarthost_delivery.ctl.output import common_flags, print_json
from smarthost_delivery.ctl.tables import age, timestamp
from smarthost_delivery.holds import parked_key, release_parked

OPERATOR_REASON = "held by an operator"
# A reason goes into SMTP replies: one short line.
REASON_MAX = 200


def register(customer: Any) -> None:
    holding = customer.add_parser(
        "hold", parents=[common_flags()], help="refuse the customer's new mail (451) and park its queued mail"
    )
    holding.add_argument("name", help="the customer's name in the policy")
    holding.add_argument("--reason", default=OPERATOR_REASON, help="what the customer's refusals say")
    holding.set_defaults(handler=hold)
    releasing = customer.add_parser(
        "release", parents=[common_flags()], help="lift a hold: new mail accepted, parked mail delivered now"
    )
    releasing.add_argument("name", help="the customer's name in the policy")
    releasing.set_defaults(handler=release)


async def hold(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    reason = args.reason.strip()
    if not reason or len(reason) > REASON_MAX or not all(" " <= c <= "~" for c in reason):
        print(f"smarthostctl: --reason must be one line of printable ASCII, at most {REASON_MAX}", file=sys.stderr)
        return 2
    new = await reputation.hold(redis, args.name, reason)
    if args.json:
        print_json({"customer": args.name, "held": True, "was_held": not new, "reason": reason})
    else:
        print(f"{args.name}: held ({reason}){'' if new else ', was held already'}")
    return 0


async def release(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    was_held = await reputation.unhold(redis, args.name)
    moved = await release_parked(redis, args.name)
    _, suspended = await reputation.state(redis, args.name)
    if args.json:
        print_json({"customer": args.name, "was_held": was_held, "released": max(moved, 0), "suspended": suspended})
        return 0
    print(f"{args.name}: {'released' if was_held else 'was not held'}; {max(moved, 0)} parked message(s) to deliver")
    if suspended:
        print(f"{args.name} is suspended in the policy: its mail stays parked until that is lifted")
    return 0


async def reputation_report(redis: Redis, customer: str) -> dict[str, Any]:
    held, suspended = await reputation.state(redis, customer)
    window = await reputation.window(redis, customer)
    parked = await redis.zcard(parked_key(customer))
    return {
        "held": held is not None,
        "reason": held.reason if held else "",
        "held_by": held.by if held else "",
        "since_ms": held.since_ms if held else 0,
        "suspended": suspended,
        "parked": int(parked),
        "window_s": window.window_s,
        "delivered": window.delivered,
        "bounced": window.bounced,
        "bounce_rate": round(window.rate, 4),
        "min_messages": window.min_messages,
        "max_bounce_rate": window.max_bounce_rate,
    }


def print_reputation(report: dict[str, Any]) -> None:
    if report["held"]:
        since = f"since {timestamp(report['since_ms'])}, {age(report['since_ms'])} ago"
        state = f"held by the {report['held_by']} ({report['reason']}), {since}"
    else:
        state = "suspended in the policy" if report["suspended"] else "sending"
    if report["held"] and report["suspended"]:
        state += "; suspended in the policy"
    print(f"state:        {state}")
    if report["parked"]:
        print(f"parked:       {report['parked']} message(s)")
    print(f"last {format_duration(report['window_s'])} (the breaker's window):")
    print(f"  delivered:    {report['delivered']}")
    print(f"  bounced:      {report['bounced']}")
    print(f"  bounce rate:  {report['bounce_rate']:.2f}")
    threshold = f"held past a rate of {report['max_bounce_rate']:g} over at least {report['min_messages']} message(s)"
    print(f"  threshold:    {threshold}")
