"""`smarthostctl customer stats NAME`: what one customer sent, had refused and bounced, and its breaker state."""

import argparse
import sys
from typing import Any

from redis.asyncio import Redis

from smarthost_common.durations import format_duration
from smarthost_common.settings import ServiceSettings
from smarthost_delivery.ctl import hold_cmds
from smarthost_delivery.ctl.output import common_flags, print_json
from smarthost_delivery.ctl.tables import table
from smarthost_delivery.customer_report import customer_report

DEFAULT_HOURS = 24


def register(areas: Any) -> None:
    customer = areas.add_parser("customer", help="per-customer usage").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    stats_parser = customer.add_parser(
        "stats", parents=[common_flags()], help="messages used in the current window, refusals, bounces"
    )
    stats_parser.add_argument("name", help="the customer's name in the policy")
    stats_parser.add_argument(
        "--hours", type=int, default=DEFAULT_HOURS, help=f"counters over this many hours (default {DEFAULT_HOURS})"
    )
    stats_parser.set_defaults(handler=stats)
    hold_cmds.register(customer)


async def stats(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    if not 1 <= args.hours <= 24 * 7:
        print("smarthostctl: --hours must be between 1 and 168 (counters are kept 8 days)", file=sys.stderr)
        return 2
    report = await customer_report(redis, args.name, args.hours)
    breaker = await hold_cmds.reputation_report(redis, args.name)
    if args.json:
        print_json(
            {
                "customer": report.customer,
                "hours": report.hours,
                "window_used": report.window_used,
                "senders": [vars(sender) for sender in report.senders],
                **report.counts,
                "reputation": breaker,
            }
        )
        return 0
    print(f"customer:     {report.customer}")
    hold_cmds.print_reputation(breaker)
    print(f"window used:  {report.window_used} message(s)")
    if report.senders:
        rows = [
            [sender.sender, str(sender.used), str(sender.limit), format_duration(sender.window_s)]
            for sender in report.senders
        ]
        print("\n".join("  " + line for line in table(["SENDER", "USED", "LIMIT", "WINDOW"], rows).splitlines()))
    print(f"last {report.hours}h:")
    print("\n".join(f"  {name.replace('_', ' ') + ':':<14}{value}" for name, value in report.counts.items()))
    return 0
