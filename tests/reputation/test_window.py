"""The breaker's window and threshold, in its own script against a real Redis, with the time given."""

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from support.redis_server import RedisServer

from smarthost_common import reputation
from smarthost_common.reputation import Tripped, outcomes_key, record_outcomes, settings_text

HOUR_MS = 3600 * 1000
# Held past 10% of at least 10 messages in an hour (buckets of a minute).
SETTINGS = settings_text(3600, 10, 0.10)
# The start of a minute, so buckets are easy to count.
T0 = 1_800_000_000_000


def run(redis_server: RedisServer, scenario: Callable[[Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        redis = Redis.from_url(redis_server.url)
        try:
            await scenario(redis)
        finally:
            await redis.aclose()

    asyncio.run(main())


def test_settings_as_the_scripts_read_them() -> None:
    assert settings_text(3600, 50, 0.1) == "3600 50 0.1 1h"
    assert settings_text(0.2, 1, 1.0) == "1 1 1.0 1s"
    assert reputation.DEFAULT_SETTINGS == "3600 50 0.1 1h"


def test_held_only_past_the_rate_and_over_the_minimum(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> None:
        # Every message bounced, but fewer than the minimum: not held.
        for n in range(9):
            assert await record_outcomes(redis, "acme", 0, 1, SETTINGS, T0 + n) is None
        # 9 bounced of 10: held, once.
        assert await record_outcomes(redis, "acme", 1, 0, SETTINGS, T0 + 10) is None
        assert await record_outcomes(redis, "acme", 0, 1, SETTINGS, T0 + 11) == Tripped("acme", 10, 11, 3600)
        assert await record_outcomes(redis, "acme", 0, 1, SETTINGS, T0 + 12) is None
        held = await reputation.held_customers(redis)
        assert held["acme"].reason == "bounce rate 0.91 (10 of 11) over 1h"
        assert (held["acme"].since_ms, held["acme"].by) == (T0 + 11, "breaker")

        # Exactly the rate is not past it: 1 of 10.
        assert await record_outcomes(redis, "bravo", 9, 0, SETTINGS, T0) is None
        assert await record_outcomes(redis, "bravo", 0, 1, SETTINGS, T0 + 1) is None
        assert "bravo" not in await reputation.held_customers(redis)
        # Successes alone never hold, and are never evaluated.
        assert await record_outcomes(redis, "bravo", 100, 0, SETTINGS, T0 + 2) is None

    run(redis_server, scenario)


def test_the_window_slides_bucket_by_bucket(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> None:
        # 5 bounced of 10 in the first minute, then only deliveries.
        await record_outcomes(redis, "acme", 5, 0, settings_text(3600, 10, 0.6), T0)
        await record_outcomes(redis, "acme", 0, 5, settings_text(3600, 10, 0.6), T0 + 1)
        await record_outcomes(redis, "acme", 20, 0, SETTINGS, T0 + HOUR_MS - 60_000)
        seen = await reputation.window(redis, "acme", T0 + HOUR_MS - 1)
        assert (seen.delivered, seen.bounced) == (25, 5)
        # The first minute's bucket is out of the window an hour after it ended.
        seen = await reputation.window(redis, "acme", T0 + HOUR_MS + 60_000)
        assert (seen.delivered, seen.bounced) == (20, 0)
        # A bounce then counts alone against what is left, and prunes what left.
        assert await record_outcomes(redis, "acme", 0, 1, SETTINGS, T0 + HOUR_MS + 60_000) is None
        fields = sorted(await redis.hkeys(outcomes_key("acme")))
        minute = (T0 + HOUR_MS - 60_000) // 1000
        assert fields == [f"{minute}o".encode(), f"{minute + 120}b".encode()]
        assert 0 < await redis.ttl(outcomes_key("acme")) <= 3600 + 60

    run(redis_server, scenario)


def test_a_long_window_keeps_sixty_buckets(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> None:
        day = settings_text(86400, 1, 0.5)
        await reputation.publish(redis, {"acme": day}, set())
        # A delivery every ten minutes for two days, in buckets of 24 minutes.
        for n in range(288):
            await record_outcomes(redis, "acme", 1, 0, day, T0 + n * 600_000)
        assert len(await redis.hkeys(outcomes_key("acme"))) <= 61
        seen = await reputation.window(redis, "acme", T0 + 287 * 600_000)
        assert 144 <= seen.delivered <= 147

    run(redis_server, scenario)


def test_settings_published_by_the_policy_are_what_delivery_reads(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> None:
        await reputation.publish(redis, {"acme": settings_text(600, 5, 0.2)}, {"bravo"})
        seen = await reputation.window(redis, "acme", T0)
        assert (seen.window_s, seen.min_messages, seen.max_bounce_rate) == (600, 5, 0.2)
        assert (await reputation.window(redis, "other", T0)).min_messages == 50
        assert await reputation.state(redis, "bravo") == (None, True)
        # Each load replaces the last.
        await reputation.publish(redis, {}, set())
        assert await reputation.state(redis, "bravo") == (None, False)
        assert (await reputation.window(redis, "acme", T0)).window_s == 3600

    run(redis_server, scenario)
