"""`smarthost-delivery`: a delivery worker process and its lifecycle."""

import asyncio
import logging
import signal
from contextlib import suppress

import dns.resolver
import uvloop
from redis.exceptions import RedisError

from smarthost_common.dns import make_resolver
from smarthost_common.health import HealthServer
from smarthost_common.logs import setup_logging
from smarthost_common.memory_budget import MemoryBudget
from smarthost_common.redis_client import connect
from smarthost_common.room import RedisRoom
from smarthost_common.settings import load_settings
from smarthost_common.spool import Spool
from smarthost_delivery.config import DeliverySettings
from smarthost_delivery.connections import ConnectionPool, ConnectSettings
from smarthost_delivery.down import DownDestinations
from smarthost_delivery.holds import HeldCustomers
from smarthost_delivery.limiter import DestinationLimiter
from smarthost_delivery.processor import MessageProcessor
from smarthost_delivery.queue_ops import DeliveryQueue
from smarthost_delivery.resolver import MxResolver
from smarthost_delivery.routing import AddressPolicy
from smarthost_delivery.transport import DomainTransport
from smarthost_delivery.worker import Worker

log = logging.getLogger("smarthost.delivery")

DNS_TIMEOUT = 10.0
# MX and address answers kept (for their TTL) across messages to the same domains.
DNS_CACHE_SIZE = 10_000
# Redis connections the worker may open: opened only when needed, bounded so a fault cannot open thousands.
REDIS_CONNECTIONS_PER_MESSAGE = 4
REDIS_CONNECTIONS_SPARE = 20


def resolver(settings: DeliverySettings) -> MxResolver:
    """A resolver that remembers answers for their TTL at two levels.

    dnspython's cache keeps every answer, NXDOMAIN and empty ones included, so
    no question goes twice to the servers; MxResolver keeps the parsed hosts
    and addresses above it, so a busy destination costs no parsing either.
    """
    dns_resolver = make_resolver(settings.dns_servers, DNS_TIMEOUT)
    dns_resolver.cache = dns.resolver.LRUCache(DNS_CACHE_SIZE)
    return MxResolver(dns_resolver)


async def serve(settings: DeliverySettings) -> None:
    # redis-py's pool refuses a command past 100 connections, and each message in flight may hold one per
    # destination while leases are given back beside them: a refused settle would deliver the message again.
    pool_size = REDIS_CONNECTIONS_PER_MESSAGE * settings.delivery_concurrency + REDIS_CONNECTIONS_SPARE
    redis = connect(settings, socket_timeout=10, socket_connect_timeout=3, max_connections=pool_size)
    pool = ConnectionPool(settings.delivery_connection_idle)
    # Waiting for a busy destination's slot is bounded like any SMTP stage.
    limiter = DestinationLimiter(redis, settings.destination_concurrency, wait=settings.delivery_timeout)
    transport = DomainTransport(
        resolver(settings),
        AddressPolicy(settings.delivery_allow_networks),
        pool,
        limiter,
        ConnectSettings(
            port=settings.delivery_port,
            hostname=settings.hostname,
            tls=settings.delivery_tls,
            connect_timeout=settings.delivery_connect_timeout,
            command_timeout=settings.delivery_timeout,
        ),
        # Marked until the first retry would come, at most a minute (Postfix's dead destination).
        DownDestinations(redis, min(settings.retry_schedule[0], 60.0)),
    )
    spool = Spool(settings.spool_url) if settings.spool_url else None
    if spool:
        await spool.open()
    room = RedisRoom(redis)
    watching = asyncio.create_task(room.run())
    queue = DeliveryQueue(redis, settings.consumer_name)
    budget = MemoryBudget(settings.delivery_memory_limit)
    holds = HeldCustomers(redis, settings.consumer_name)
    # Known before the first message is read; when Redis is not there yet, the loop tries every second.
    with suppress(RedisError, OSError):
        await holds.refresh()
    holding = asyncio.create_task(holds.run())
    processor = MessageProcessor(queue, transport, settings, spool, room, budget, holds)
    worker = Worker(redis, queue, processor, pool, settings, spool)
    probes = HealthServer(settings.metrics_listen)
    probes.start()
    probes.ready = True

    stop = asyncio.Event()

    def drain() -> None:
        probes.ready = False
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain)
    log.info("delivery started", extra={"consumer": settings.consumer_name, "spool": spool is not None})
    await worker.run(stop)
    await limiter.close()
    watching.cancel()
    holding.cancel()
    if spool:
        await spool.close()
    await redis.aclose()
    probes.stop()
    log.info("delivery stopped")


def main() -> None:
    settings = load_settings(DeliverySettings)
    setup_logging(settings.log_level)
    # uvloop: the worker's time goes to socket round trips (Redis, SMTP), which it runs with far less overhead.
    uvloop.run(serve(settings))
