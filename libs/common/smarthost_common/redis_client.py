"""The one way every service connects to Redis: a URL, or the primary that Redis Sentinel names.

With `SMARTHOST_REDIS_SENTINELS` set the services ask the sentinels which
node is the primary of `SMARTHOST_REDIS_SENTINEL_MASTER`, and ask again when
a connection to it fails or it turns out to be a replica (after a failover).
The URL still gives the password, user, database and TLS of the data nodes.
"""

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.connection import parse_url

from smarthost_common.net import split_hostport
from smarthost_common.settings import ServiceSettings


def connect(settings: ServiceSettings, **options: Any) -> Redis:
    """A client for the queue's Redis; `options` are redis-py connection options (timeouts, retry)."""
    # No CLIENT SETINFO: it costs a round trip and a read of redis-py's package metadata per new connection.
    options.setdefault("driver_info", None)
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url, **options)
    parsed: dict[str, Any] = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    node = {key: value for key, value in parsed.items() if key not in ("host", "port")}
    sentinels = [split_hostport(item.strip()) for item in settings.redis_sentinels.split(",") if item.strip()]
    timeouts = {key: value for key, value in options.items() if key.startswith("socket_")}
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts, **node, **options)  # type: ignore[no-untyped-call]
    primary: Redis = sentinel.master_for(settings.redis_sentinel_master)
    return primary
