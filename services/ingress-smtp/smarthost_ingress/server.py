"""`smarthost-ingress`: the SMTP listeners and their lifecycle.

The process owns its event loop (aiosmtpd's threaded Controller is for tests)
and drains on SIGTERM: readiness false at once, listeners closed, sessions
between transactions told 421, the others given `SMARTHOST_DRAIN_TIMEOUT` to
finish theirs, then 421 and exit.
"""

import asyncio
import logging
import signal

import uvloop

from smarthost_common.health import HealthServer
from smarthost_common.logs import setup_logging
from smarthost_common.memory_budget import MemoryBudget
from smarthost_common.net import split_hostport
from smarthost_common.redis_client import connect
from smarthost_common.room import RedisRoom
from smarthost_common.settings import load_settings
from smarthost_common.spool import Spool
from smarthost_ingress import metrics
from smarthost_ingress.auth import AuthThrottle
from smarthost_ingress.config import IngressSettings
from smarthost_ingress.handler import RelayHandler
from smarthost_ingress.limits import ConnectionLimits
from smarthost_ingress.policy_client import PolicyClient
from smarthost_ingress.protocol import RelaySMTP, Shared
from smarthost_ingress.proxy import ProxyTrust
from smarthost_ingress.sessions import Sessions
from smarthost_ingress.storage import QueueStorage
from smarthost_ingress.tls import TlsFiles

log = logging.getLogger("smarthost.ingress")


def shared_state(settings: IngressSettings) -> Shared:
    memory = MemoryBudget(settings.data_memory_limit)
    metrics.DATA_MEMORY.set_function(lambda: memory.used)
    sessions = Sessions()
    metrics.SESSIONS.set_function(lambda: len(sessions.active))
    return Shared(
        settings=settings,
        sessions=sessions,
        connections=ConnectionLimits(settings.max_connections, settings.max_connections_per_ip),
        memory=memory,
        auth_throttle=AuthThrottle(
            settings.auth_max_failures, settings.auth_failure_window, settings.auth_failure_delay
        ),
        proxy=ProxyTrust(settings.proxy_trusted),
        tls=TlsFiles(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None,
    )


async def listen(
    variable: str, address: str, shared: Shared, handler: RelayHandler, submission: bool
) -> asyncio.Server:
    host, port = split_hostport(address)
    try:
        return await asyncio.get_running_loop().create_server(
            lambda: RelaySMTP(shared, handler, submission=submission), host, port
        )
    except OSError as exc:
        raise SystemExit(f"configuration error: {variable}: {address}: {exc}") from None


async def serve(settings: IngressSettings) -> None:
    shared = shared_state(settings)
    policy = PolicyClient(settings.policy_addr, settings.policy_timeout)
    redis = connect(settings, socket_timeout=5, socket_connect_timeout=3)
    spool = Spool(settings.spool_url) if settings.spool_url else None
    if spool:
        await spool.open()
    room = RedisRoom(redis)
    watching = asyncio.create_task(room.run())
    storage = QueueStorage(
        redis, spool, settings.queue_memory_max, room, settings.queue_min_replicas, settings.queue_replica_wait
    )
    handler = RelayHandler(policy, storage, settings.hostname)

    servers = [await listen("SMARTHOST_SMTP_LISTEN", settings.smtp_listen, shared, handler, submission=False)]
    if settings.submission_listen:
        servers.append(
            await listen("SMARTHOST_SUBMISSION_LISTEN", settings.submission_listen, shared, handler, submission=True)
        )
    probes = HealthServer(settings.metrics_listen)
    probes.start()
    probes.ready = True
    log.info(
        "ingress listening",
        extra={
            "listen": settings.smtp_listen,
            "submission": settings.submission_listen or "",
            "tls": shared.tls is not None,
            "policy": settings.policy_addr,
            "spool": spool is not None,
        },
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("ingress draining", extra={"sessions": len(shared.sessions.active), "timeout": settings.drain_timeout})
    probes.ready = False
    for server in servers:
        server.close()
    await shared.sessions.drain(settings.drain_timeout)
    await handler.drain()
    await policy.close()
    watching.cancel()
    if spool:
        await spool.close()
    await redis.aclose()
    probes.stop()
    log.info("ingress stopped")


def main() -> None:
    settings = load_settings(IngressSettings)
    setup_logging(settings.log_level)
    # uvloop: less CPU per SMTP session and policy call than asyncio's own loop,
    # and it writes a queued message's bytes to Redis without copying them.
    uvloop.run(serve(settings))
