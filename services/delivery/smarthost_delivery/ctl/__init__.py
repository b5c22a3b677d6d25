"""`smarthostctl`: what operators ask of the relay, one subcommand area per concern.

`queue` (the mail queue), `trace` (one message's story), `customer` (one
customer's usage), `policy` (ask the policy service) and `dkim` (customer
domains' signing keys).
"""

import argparse
import asyncio

from smarthost_common.redis_client import connect
from smarthost_common.settings import load_settings
from smarthost_delivery.ctl import customer_cmds, dkim_cmds, policy_cmds, queue_cmds, trace_cmds
from smarthost_delivery.ctl.settings import CtlSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="smarthostctl", description="Inspect and manage the smarthost relay")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    areas = parser.add_subparsers(dest="area", required=True, metavar="AREA")
    queue_cmds.register(areas)
    trace_cmds.register(areas)
    customer_cmds.register(areas)
    policy_cmds.register(areas)
    dkim_cmds.register(areas)
    args = parser.parse_args(argv)
    settings = load_settings(CtlSettings)

    async def run() -> int:
        redis = connect(settings, socket_timeout=10, socket_connect_timeout=3)
        try:
            code: int = await args.handler(redis, args, settings)
            return code
        finally:
            await redis.aclose()

    raise SystemExit(asyncio.run(run()))
