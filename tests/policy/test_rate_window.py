"""The rate limit script against a real Redis: a sliding window, refusals not counted, the customer's counters kept."""

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from support.redis_server import RedisServer

from smarthost_common.customer_stats import current_hour, hour_key, senders_key
from smarthost_policy.policy_file import RateLimit
from smarthost_policy.rate_limit import RateLimiter

KEY = "smarthost:rate:ip:192.0.2.1"


def test_window_slides_from_the_oldest_message(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_server.url)
        limiter = RateLimiter(redis, timeout=2.0)
        limit = RateLimit(messages=2, per=6)
        assert (await limiter.count(KEY, limit, "first", "acme")).accepted
        await asyncio.sleep(3)
        assert (await limiter.count(KEY, limit, "second", "acme")).count == 2
        refused = await limiter.count(KEY, limit, "third", "acme")
        assert not refused.accepted
        assert refused.count == 2
        # The first message leaves the window about 3 s from now: a fixed
        # window, or one counted from the refusal, would say otherwise.
        assert 1 <= refused.retry_after <= 3
        await asyncio.sleep(refused.retry_after)
        assert (await limiter.count(KEY, limit, "fourth", "acme")).accepted
        # "second" is still inside its window.
        assert not (await limiter.count(KEY, limit, "fifth", "acme")).accepted
        assert await redis.zcard(KEY) == 2
        assert 0 < await redis.pttl(KEY) <= 6000
        # The same script counted each message for its customer, and named the window theirs.
        counts: Counter[str] = Counter()
        # Summed over this hour and the last, in case the test ran across the hour.
        for hour in (current_hour() - 1, current_hour()):
            found: Any = await redis.hgetall(hour_key("acme", hour))
            counts.update({field.decode(): int(value) for field, value in found.items()})
        assert counts == {"accepted": 3, "refused": 2, "rate_limited": 2}
        assert await redis.hgetall(senders_key("acme")) == {KEY.encode(): b"2/6000"}
        assert 0 < await redis.pttl(senders_key("acme")) <= 6000
        await redis.aclose()

    asyncio.run(scenario())


def test_counts_after_redis_forgot_the_script_and_releases(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_server.url)
        limiter = RateLimiter(redis, timeout=2.0)
        limit = RateLimit(messages=5, per=60)
        assert (await limiter.count(KEY, limit, "first", "acme")).count == 1
        # As after a Redis restart: the script goes again as text.
        await redis.script_flush()
        assert (await limiter.count(KEY, limit, "second", "acme")).count == 2
        assert await limiter.release(KEY, "second")
        assert not await limiter.release(KEY, "second")
        assert await redis.zrange(KEY, 0, -1) == [b"first"]
        await redis.aclose()

    asyncio.run(scenario())


def test_a_redis_that_does_not_answer_fails_within_the_timeout() -> None:
    async def scenario() -> None:
        # Accepts connections and never answers.
        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        redis = Redis.from_url(f"redis://127.0.0.1:{port}")
        limiter = RateLimiter(redis, timeout=0.3)
        started = time.monotonic()
        # One retry on a fresh connection, as for a lost one: two deadlines at most.
        with pytest.raises(RedisError):
            await limiter.count(KEY, RateLimit(messages=5, per=60), "first", "acme")
        assert time.monotonic() - started < 1.5
        await redis.aclose()
        silent.close()

    asyncio.run(scenario())
