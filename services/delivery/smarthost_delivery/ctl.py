"""`smarthostctl`: what operators ask of the queue."""

import argparse
import asyncio
import json
import sys

from redis.asyncio import Redis

from smarthost_common.queue import DEFERRED_SET, DELIVERY_GROUP, READY_STREAM
from smarthost_common.settings import ServiceSettings, load_settings


class CtlSettings(ServiceSettings):
    metrics_listen: str = "127.0.0.1:0"


async def queue_stats(redis: Redis) -> dict[str, int]:
    ready = await redis.xlen(READY_STREAM)
    pending = 0
    if ready:
        groups = await redis.xinfo_groups(READY_STREAM)
        pending = sum(
            int(group["pending"]) for group in groups if group["name"] in (DELIVERY_GROUP, DELIVERY_GROUP.encode())
        )
    return {"ready": ready - pending, "in_flight": pending, "deferred": await redis.zcard(DEFERRED_SET)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="smarthostctl", description="Inspect and manage the smarthost queue")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="area", required=True)
    queue = sub.add_parser("queue").add_subparsers(dest="command", required=True)
    queue.add_parser("stats", help="messages ready, in flight and deferred")
    args = parser.parse_args()
    settings = load_settings(CtlSettings)

    async def run() -> dict[str, int]:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await queue_stats(redis)
        finally:
            await redis.aclose()

    stats = asyncio.run(run())
    if args.json:
        json.dump(stats, sys.stdout)
        print()
    else:
        for key, value in stats.items():
            print(f"{key:<10} {value}")
