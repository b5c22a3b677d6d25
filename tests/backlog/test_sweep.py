"""The sweep of spool rows no queued message points at, against a real Redis and PostgreSQL.

A crash between committing a body to the spool and the Redis step that
points the message at it leaves such a row; the sweep must remove it, and
must never remove a row a message needs, a row too young to judge, or
anything when Redis holds no queue at all.
"""

import asyncio

from redis.asyncio import Redis
from support.postgres_server import PostgresServer
from support.redis_server import RedisServer

from smarthost_common.queue import TIERS, message_key
from smarthost_common.spool import Spool
from smarthost_delivery.spool_sweep import sweep


def test_sweep_removes_old_orphans_only(redis_server: RedisServer, postgres: PostgresServer) -> None:
    async def run() -> tuple[int, int, set[str]]:
        redis = Redis.from_url(redis_server.url)
        spool = Spool(postgres.url)
        await spool.open()
        try:
            for queue_id in ("ORPHAN", "NEEDED", "INMEMORY", "YOUNG"):
                await spool.store(queue_id, b"Subject: x\r\n\r\nbody\r\n")
            postgres.query("UPDATE smarthost_spool SET stored_at = now() - interval '1 hour' WHERE queue_id <> 'YOUNG'")
            await redis.hset(message_key("NEEDED"), mapping={"record": b"", "spooled": 22, "eightbit": 0})
            # A move that crashed before Redis let go of its copy: Redis still has the body.
            await redis.hset(message_key("INMEMORY"), mapping={"record": b"", "body": b"x"})
            # No queue in this Redis at all (a wrong or empty one): nothing is touched.
            untouched = await sweep(spool, redis)
            await redis.hset(TIERS, mapping={"memory_messages": 1, "disk_messages": 1})
            removed = await sweep(spool, redis)
            left = {str(row[0]) for row in postgres.query("SELECT queue_id FROM smarthost_spool")}
            return untouched, removed, left
        finally:
            await spool.close()
            await redis.aclose()

    untouched, removed, left = asyncio.run(run())
    assert untouched == 0
    assert removed == 2
    assert left == {"NEEDED", "YOUNG"}
