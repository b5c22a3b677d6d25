"""Messages per sliding window per customer host, kept in Redis for every replica.

Each sender has a sorted set of the times (Redis server clock, milliseconds)
of its accepted messages. One Lua script drops the times that left the
window, counts what is left and, only when under the limit, adds this
message: Redis runs scripts one at a time, so the limit holds exactly across
any number of policy replicas, and a refused message is never counted.

The same script adds the message to its customer's counters (see
smarthost_common.customer_stats): one round trip per message, not two.
"""

import asyncio
import math
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_common.customer_stats import STATS_TTL, current_hour, hour_key, senders_key
from smarthost_policy.networks import parse_client_ip
from smarthost_policy.policy_file import RateLimit

KEY_PREFIX = "smarthost:rate:"

# KEYS[1] the sender's window, KEYS[2] its customer's hour counters, KEYS[3]
# the customer's windows; ARGV limit, window (ms), a member unique to this
# message, the counters' lifetime (s). Returns {accepted (0/1), messages in
# the window, ms until the oldest one leaves it}.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  redis.call('HINCRBY', KEYS[2], 'accepted', 1)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('HSET', KEYS[3], KEYS[1], ARGV[1] .. '/' .. ARGV[2])
  redis.call('PEXPIRE', KEYS[3], window)
  return {1, count + 1, 0}
end
redis.call('HINCRBY', KEYS[2], 'refused', 1)
redis.call('HINCRBY', KEYS[2], 'rate_limited', 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True)
class RateDecision:
    accepted: bool
    # Messages in the window, this one included when accepted.
    count: int
    # Seconds until a refused sender may send again (0 when accepted).
    retry_after: int


def rate_key(session: pb.Session) -> str:
    """Whose window a message counts in: the SMTP AUTH user, else the client IP."""
    if session.auth_user:
        return f"{KEY_PREFIX}user:{session.auth_user}"
    address = parse_client_ip(session.client_ip)
    return f"{KEY_PREFIX}ip:{address if address is not None else session.client_ip}"


def window_ms(limit: RateLimit) -> int:
    """The window in whole milliseconds, at least one."""
    return max(1, round(limit.per * 1000))


def retry_after_seconds(milliseconds: int) -> int:
    """Whole seconds to wait, rounded up so a retry then is never too early."""
    return max(1, math.ceil(milliseconds / 1000))


class RateLimiter:
    def __init__(self, redis: Redis, timeout: float) -> None:
        """`redis` has no socket timeout of its own: `timeout` bounds each command, its write and its reply."""
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)
        self._timeout = timeout

    async def count(self, key: str, limit: RateLimit, message_id: str, customer: str) -> RateDecision:
        """Count one message in `key`'s window if it is under `limit`; refuse it otherwise.

        The message's queue id is its member, so `release` can take the count
        back. `customer`'s counters get the message as accepted, or as refused
        by the rate limit.
        """
        keys_and_args = (
            key,
            hour_key(customer, current_hour()),
            senders_key(customer),
            limit.messages,
            window_ms(limit),
            message_id or secrets.token_hex(8),
            STATS_TTL,
        )
        try:
            reply = await self._command("EVALSHA", self._script.sha, 3, *keys_and_args)
        except NoScriptError:
            # A Redis restart emptied its script cache: the text, once.
            reply = await self._command("EVAL", self._script.script, 3, *keys_and_args)
        accepted, count, wait = reply
        if accepted:
            return RateDecision(True, int(count), 0)
        return RateDecision(False, int(count), retry_after_seconds(int(wait)))

    async def release(self, key: str, message_id: str) -> bool:
        """Take back the count of a message that was not queued after all."""
        return bool(message_id) and bool(await self._command("ZREM", key, message_id))

    async def _command(self, *args: Any) -> Any:
        """One command on a pooled connection, one deadline for its write and reply.

        redis-py's own command path runs each write as a task of its own (its
        socket timeout) and keeps per-command bookkeeping, which cost more CPU
        than the round trip itself. As its client did here: one retry on a
        fresh connection after a connection error or timeout.
        """
        pool = self._redis.connection_pool
        for attempt in (1, 2):
            connection = None
            try:
                # Getting the connection too: connecting (or asking Sentinel) counts against the deadline.
                async with asyncio.timeout(self._timeout):
                    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
                    await connection.send_command(*args, check_health=False)
                    return await connection.read_response()
            except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
                if connection is not None:
                    await connection.disconnect()
                if attempt == 2:
                    if isinstance(exc, RedisError):
                        raise
                    # A RedisError, as every other failure to reach the counters.
                    raise RedisTimeoutError(f"Redis did not answer within {self._timeout}s") from exc
            finally:
                if connection is not None:
                    await pool.release(connection)
        raise AssertionError("unreachable")
