"""The ingress's enqueue with a real Redis: one MULTI of the body and the script, all or nothing."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, OutOfMemoryError
from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient
from support.redis_server import RedisServer

from smarthost_common.queue import (
    ENQUEUE,
    QUEUE_INDEX,
    READY_STREAM,
    TIERS,
    _enqueue_memory,
    announce,
    enqueue,
    message_args,
    message_key,
    message_keys,
    new_queue_id,
)
from smarthost_common.room import RedisRoom
from smarthost_common.trace import TRACE_MAX_EVENTS, TRACE_TTL, trace_key
from smarthost_ingress.storage import NoStorage, QueueStorage

T = TypeVar("T")
BODY = b"Subject: queued\r\n\r\n" + b"x" * 10_000 + b"\r\n"


def record() -> QueuedMessage:
    return QueuedMessage(
        queue_id=new_queue_id(),
        mail_from="alice@sender.test",
        recipients=[Recipient(address="bob@example.test")],
        received_at_ms=int(time.time() * 1000),
    )


def run(url: str, step: Callable[[Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        client = Redis.from_url(url)
        try:
            return await step(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def entries(client: redis.Redis) -> list[dict[bytes, bytes]]:
    """The fields of the ready stream's entries, oldest first."""
    found: Any = client.xrange(READY_STREAM)
    return [fields for _, fields in found]


def nothing_of(client: redis.Redis, queue_id: str) -> bool:
    return (
        not client.exists(message_key(queue_id), trace_key(queue_id))
        and client.zscore(QUEUE_INDEX, queue_id) is None
        and not client.exists(READY_STREAM)
    )


def test_a_message_is_stored_whole_and_its_entry_says_the_body_size(redis_server: RedisServer) -> None:
    message = record()
    assert run(redis_server.url, lambda r: enqueue(r, message, BODY, memory_max=0))
    client = redis_server.client()
    key = message_key(message.queue_id)
    assert client.hmget(key, "record", "body", "eightbit") == [message.SerializeToString(), BODY, b"0"]
    assert client.ttl(key) == -1, "the script keeps the body it was written with"
    assert client.hgetall(TIERS) == {b"memory_bytes": str(len(BODY)).encode(), b"memory_messages": b"1"}
    assert entries(client) == [{b"id": message.queue_id.encode(), b"size": str(len(BODY)).encode()}]


def test_past_the_memory_mark_nothing_is_written(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.hset(TIERS, mapping={"memory_bytes": 95_000, "memory_messages": 3})
    message = record()
    assert not run(redis_server.url, lambda r: enqueue(r, message, BODY, memory_max=100_000))
    assert nothing_of(client, message.queue_id)
    assert client.hgetall(TIERS) == {b"memory_bytes": b"95000", b"memory_messages": b"3"}


def test_redis_past_its_maxmemory_refuses_the_whole_step(redis_server: RedisServer) -> None:
    """The ingress hears it as no room (452), and nothing was written."""
    client = redis_server.client()
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) - 1024))
    message = record()
    with pytest.raises(OutOfMemoryError):
        run(redis_server.url, lambda r: enqueue(r, message, BODY, memory_max=0))

    def store(r: Redis) -> Awaitable[str]:
        return QueueStorage(r, None, 1 << 30, RedisRoom(r)).store(message, bytearray(BODY), len(BODY))

    with pytest.raises(NoStorage, match="redis refused for memory"):
        run(redis_server.url, store)
    client.config_set("maxmemory", "0")
    assert nothing_of(client, message.queue_id)
    assert not client.exists(TIERS)


def test_after_the_script_cache_is_emptied_a_message_is_queued_once(redis_server: RedisServer) -> None:
    client = redis_server.client()
    first, second = record(), record()
    assert run(redis_server.url, lambda r: enqueue(r, first, BODY, memory_max=0))
    client.script_flush()
    assert run(redis_server.url, lambda r: enqueue(r, second, BODY, memory_max=0))
    assert [fields[b"id"] for fields in entries(client)] == [
        first.queue_id.encode(),
        second.queue_id.encode(),
    ]
    assert client.ttl(message_key(second.queue_id)) == -1
    assert client.hget(TIERS, "memory_messages") == b"2"
    assert client.hget(TIERS, "memory_bytes") == str(2 * len(BODY)).encode()


def test_a_body_whose_script_did_not_run_expires(redis_server: RedisServer) -> None:
    """The step NOSCRIPT fails (before `enqueue` sends it again with the text) leaves only an expiring body."""
    client = redis_server.client()
    client.script_flush()
    message = record()
    keys = [*message_keys(message), "smarthost:queue:deferred"]
    args = [*message_args(message, len(BODY), b"", 0, {}), TRACE_MAX_EVENTS, TRACE_TTL, 0]
    with pytest.raises(NoScriptError):
        run(redis_server.url, lambda r: _enqueue_memory(r, keys, args, BODY, by_sha=True))
    key = message_key(message.queue_id)
    assert client.hkeys(key) == [b"body"] and 0 < client.ttl(key) <= 60
    assert client.zscore(QUEUE_INDEX, message.queue_id) is None and not client.exists(READY_STREAM, TIERS)
    assert ENQUEUE.startswith("#!lua\n"), "a script Redis refuses past its maxmemory"


def test_a_parked_message_is_announced_with_its_body_size(redis_server: RedisServer) -> None:
    message = record()
    park_ms = int(time.time() * 1000) + 60_000
    assert run(redis_server.url, lambda r: enqueue(r, message, BODY, memory_max=0, park_ms=park_ms))
    client = redis_server.client()
    assert not client.exists(READY_STREAM)
    run(redis_server.url, lambda r: announce(r, message.queue_id))
    assert entries(client) == [{b"id": message.queue_id.encode(), b"size": str(len(BODY)).encode()}]


def test_a_connection_redis_closed_is_replaced_and_the_message_queued_once(redis_server: RedisServer) -> None:
    first, second = record(), record()
    client = redis_server.client()

    async def both(r: Redis) -> bool:
        await enqueue(r, first, BODY, memory_max=0)
        client.client_kill_filter(_type="normal", skipme=True)
        return await enqueue(r, second, BODY, memory_max=0)

    assert run(redis_server.url, both)
    assert [fields[b"id"] for fields in entries(client)] == [first.queue_id.encode(), second.queue_id.encode()]
    assert client.hget(TIERS, "memory_messages") == b"2"


def test_an_enqueue_sent_again_after_it_ran_queues_the_message_once(redis_server: RedisServer) -> None:
    """What the retry after a lost EXEC reply does: no second entry, no second count."""
    message = record()
    for _ in range(2):
        assert run(redis_server.url, lambda r: enqueue(r, message, BODY, memory_max=0))
    client = redis_server.client()
    assert entries(client) == [{b"id": message.queue_id.encode(), b"size": str(len(BODY)).encode()}]
    assert client.hgetall(TIERS) == {b"memory_bytes": str(len(BODY)).encode(), b"memory_messages": b"1"}
    assert client.ttl(message_key(message.queue_id)) == -1
