"""`smarthost-policy`: the gRPC policy server and its lifecycle."""

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from smarthost.policy.v1 import policy_pb2
from smarthost.policy.v1.policy_pb2_grpc import add_PolicyServiceServicer_to_server

from smarthost_common.dns import make_resolver
from smarthost_common.health import HealthServer
from smarthost_common.logs import setup_logging
from smarthost_common.redis_client import connect
from smarthost_common.settings import load_settings
from smarthost_policy.config import PolicySettings
from smarthost_policy.dns_cache import DnsCache
from smarthost_policy.kube_source import ConfigError, RelayCustomerSource, default_namespace, load_client_config
from smarthost_policy.policy_file import PolicyFile, parse_policy
from smarthost_policy.policy_store import PolicyStore
from smarthost_policy.rate_limit import RateLimiter
from smarthost_policy.reload import PolicyFileWatcher
from smarthost_policy.routability import Routability
from smarthost_policy.service import PolicyService
from smarthost_policy.usage import CustomerUsage

log = logging.getLogger("smarthost.policy")

SERVICE_NAME = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
# Clients re-resolve the headless Service only when a connection closes, so
# connections are aged out to spread load onto new replicas.
SERVER_OPTIONS = [
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 30 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20 * 1000),
]
DRAIN_SECONDS = 10.0
# A rate check must fail fast (451 4.3.0) when Redis is gone, well inside the
# ingress's deadline; one retry on a fresh connection covers a Redis restart.
REDIS_TIMEOUT = 2.0


def initial_policy(settings: PolicySettings) -> tuple[PolicyFile, bytes]:
    if settings.policy_file is None:
        if settings.policy_source == "file":
            log.warning("SMARTHOST_POLICY_FILE is not set: no customers, every client is refused")
        return PolicyFile(), b""
    try:
        content = settings.policy_file.read_bytes()
        return parse_policy(content, str(settings.policy_file)), content
    except (OSError, ValueError) as exc:
        raise SystemExit(f"configuration error: SMARTHOST_POLICY_FILE: {exc}") from None


def background(coroutine: Coroutine[Any, Any, None], name: str) -> "asyncio.Task[None]":
    """A task that runs for the server's life; its unexpected end is logged, never silent."""
    task = asyncio.create_task(coroutine, name=name)

    def done(task: "asyncio.Task[None]") -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", extra={"task": name}, exc_info=task.exception())

    task.add_done_callback(done)
    return task


async def serve(settings: PolicySettings) -> None:
    policy, content = initial_policy(settings)
    store = PolicyStore(policy)
    tasks = []
    if settings.policy_file is not None:
        watcher = PolicyFileWatcher(settings.policy_file, settings.policy_reload_interval, store, content)
        tasks.append(background(watcher.run(), "policy-file"))
    probes = HealthServer(settings.metrics_listen)
    probes.start()
    if settings.policy_source == "kubernetes":
        try:
            source = RelayCustomerSource(default_namespace(settings.policy_namespace), store)
            await load_client_config()
        except ConfigError as exc:
            raise SystemExit(f"configuration error: {exc}") from None
        tasks.append(background(source.run(), "relaycustomers"))
        # Not serving before the first list: until then every client would be
        # refused with a 5xx, where no answer at all gives the ingress a 451.
        log.info("waiting for the first list of relaycustomers")
        await source.synced.wait()

    redis = connect(
        settings,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )
    # The rate limit bounds its own calls (see RateLimiter): no socket timeout here.
    rate_redis = connect(
        settings, socket_timeout=None, socket_connect_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 1)
    )
    routability = Routability(
        DnsCache(make_resolver(settings.dns_servers, settings.dns_timeout), settings.dns_cache_size),
        settings.dns_timeout,
    )
    server = grpc.aio.server(options=SERVER_OPTIONS)
    usage = CustomerUsage(redis)
    add_PolicyServiceServicer_to_server(
        PolicyService(
            lambda: store.index,
            lambda: store.users,
            routability,
            RateLimiter(rate_redis, REDIS_TIMEOUT),
            usage,
            customer_label=settings.metrics_customer_label,
            reuse_ms=round(settings.policy_reuse_time * 1000),
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if not server.add_insecure_port(settings.policy_listen):
        raise SystemExit(f"configuration error: SMARTHOST_POLICY_LISTEN: cannot listen on {settings.policy_listen}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    probes.ready = True
    log.info(
        "policy listening",
        extra={"listen": settings.policy_listen, "source": settings.policy_source, "customers": store.index.customers},
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("policy draining")
    probes.ready = False
    await health_servicer.enter_graceful_shutdown()
    await server.stop(DRAIN_SECONDS)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await usage.drain()
    await redis.aclose()
    await rate_redis.aclose()
    probes.stop()
    log.info("policy stopped")


def main() -> None:
    settings = load_settings(PolicySettings)
    setup_logging(settings.log_level)
    # grpc.aio runs on uvloop, and each call costs less CPU than on asyncio's own loop.
    uvloop.run(serve(settings))
