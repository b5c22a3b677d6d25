"""The rate limit script against a real Redis: a sliding window, refusals not counted."""

import asyncio

from redis.asyncio import Redis
from support.redis_server import RedisServer

from smarthost_policy.policy_file import RateLimit
from smarthost_policy.rate_limit import RateLimiter

KEY = "smarthost:rate:ip:192.0.2.1"


def test_window_slides_from_the_oldest_message(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_server.url)
        limiter = RateLimiter(redis)
        limit = RateLimit(messages=2, per=6)
        assert (await limiter.count(KEY, limit, "first")).accepted
        await asyncio.sleep(3)
        assert (await limiter.count(KEY, limit, "second")).count == 2
        refused = await limiter.count(KEY, limit, "third")
        assert not refused.accepted
        assert refused.count == 2
        # The first message leaves the window about 3 s from now: a fixed
        # window, or one counted from the refusal, would say otherwise.
        assert 1 <= refused.retry_after <= 3
        await asyncio.sleep(refused.retry_after)
        assert (await limiter.count(KEY, limit, "fourth")).accepted
        # "second" is still inside its window.
        assert not (await limiter.count(KEY, limit, "fifth")).accepted
        assert await redis.zcard(KEY) == 2
        assert 0 < await redis.pttl(KEY) <= 6000
        await redis.aclose()

    asyncio.run(scenario())
