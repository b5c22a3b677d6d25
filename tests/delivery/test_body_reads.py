"""How a worker reads a message: its record, and a small body with it, in one round trip of plain reads."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import BODY, FAST, put, put_many, queue_is_empty
from smarthost_common.queue import READY_STREAM, message_key
from smarthost_delivery.processor import EAGER_BODY_MAX, MessageProcessor
from smarthost_delivery.queue_ops import DeliveryQueue, Loaded

LARGE = BODY + b"y" * EAGER_BODY_MAX + b"\r\n"


def test_a_small_body_comes_with_its_record_and_a_large_one_when_needed(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_id, large_id = put_many(
        redis_server.url, [("alice@sender.test", ["bob@example.test"], body) for body in (BODY, LARGE)]
    )
    sent: list[Any] = []
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        await send(self, command, check_health)

    async def main() -> tuple[list[Any], bytes | None]:
        client = Redis.from_url(redis_server.url)
        try:
            queue = DeliveryQueue(client, "reader")
            await queue.ensure_group()
            entries = await queue.read(10, block_ms=1000)
            assert [(entry.queue_id, entry.body_size) for entry in entries] == [
                (small_id, len(BODY)),
                (large_id, len(LARGE)),
            ]
            await client.config_resetstat()
            monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
            loaded = await queue.load([MessageProcessor.load_request(entry) for entry in entries])
            monkeypatch.undo()
            return loaded, await queue.read_body(large_id)
        finally:
            await client.aclose()

    (small, large), later = asyncio.run(main())
    assert len(sent) == 1, "one round trip for the whole read"
    commands = redis_server.client().info("commandstats")
    assert not {"cmdstat_eval", "cmdstat_evalsha"} & set(commands), "no body goes through Lua"
    assert small is not None and large is not None
    assert small[2] == BODY and (small[1].size, small[1].spooled) == (len(BODY), False)
    assert large[2] is None and (large[1].size, large[1].spooled) == (len(LARGE), False)
    assert later == LARGE


def test_a_body_moved_to_the_spool_or_a_message_deleted_since_its_entry_was_written(
    redis_server: RedisServer,
) -> None:
    moved, deleted = put_many(redis_server.url, [("alice@sender.test", ["bob@example.test"], BODY)] * 2)
    client = redis_server.client()
    client.hdel(message_key(moved), "body")
    client.hset(message_key(moved), "spooled", len(BODY))
    client.delete(message_key(deleted))

    async def main() -> list[Loaded]:
        client = Redis.from_url(redis_server.url)
        try:
            queue = DeliveryQueue(client, "reader")
            await queue.ensure_group()
            entries = await queue.read(10, block_ms=1000)
            assert all(MessageProcessor.load_request(entry)[1] for entry in entries)
            return await queue.load([MessageProcessor.load_request(entry) for entry in entries])
        finally:
            await client.aclose()

    spooled, gone = asyncio.run(main())
    assert spooled is not None and spooled[2] is None
    assert (spooled[1].size, spooled[1].spooled) == (len(BODY), True)
    assert gone is None


def test_entries_that_do_not_say_the_body_size_still_deliver(
    relay: Relay, redis_server: RedisServer, sinks: Callable[..., SmtpSink]
) -> None:
    """As an older version wrote them: a first attempt, and a retry; their bodies are read at DATA."""
    sink = sinks("example.test")
    first = put(redis_server.url, "alice@sender.test", ["bob@example.test"])
    retried = put(redis_server.url, "alice@sender.test", ["carol@example.test"])
    client = redis_server.client()
    client.delete(READY_STREAM)
    client.xadd(READY_STREAM, {"id": first})
    client.xadd(READY_STREAM, {"id": retried, "retry": "1"})

    relay.start_delivery(**FAST)
    wait_until(lambda: len(sink.messages) == 2, timeout=30, what="both messages delivered")
    wait_until(lambda: queue_is_empty(redis_server), what="queue settled")
    assert sorted(message.rcpt_tos for message in sink.messages) == [("bob@example.test",), ("carol@example.test",)]
    assert all(b"Subject: delivery test" in message.data for message in sink.messages)
