"""`smarthost-ingress`: the SMTP listener and its lifecycle.

The process owns its event loop (aiosmtpd's threaded Controller is for tests)
and drains on SIGTERM: readiness false, listener closed, sessions in progress
given `SMARTHOST_DRAIN_TIMEOUT` to finish, then closed.
"""

import asyncio
import logging
import signal
from typing import AnyStr

from aiosmtpd.smtp import SMTP
from redis.asyncio import Redis

from smarthost_common.health import HealthServer
from smarthost_common.logs import setup_logging
from smarthost_common.net import split_hostport
from smarthost_common.settings import load_settings
from smarthost_ingress.config import IngressSettings
from smarthost_ingress.handler import RelayHandler
from smarthost_ingress.policy_client import PolicyClient

log = logging.getLogger("smarthost.ingress")


class Sessions:
    """The SMTP sessions currently connected, so SIGTERM can wait for them."""

    def __init__(self) -> None:
        self.active: set[RelaySMTP] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def add(self, protocol: "RelaySMTP") -> None:
        self.active.add(protocol)
        self.idle.clear()

    def discard(self, protocol: "RelaySMTP") -> None:
        self.active.discard(protocol)
        if not self.active:
            self.idle.set()

    async def drain(self, grace: float) -> None:
        """Let sessions finish within `grace` seconds, then tell the rest 421."""
        try:
            async with asyncio.timeout(grace):
                await self.idle.wait()
        except TimeoutError:
            for protocol in list(self.active):
                if isinstance(protocol.transport, asyncio.WriteTransport):
                    protocol.transport.write(b"421 4.3.2 Service shutting down, try again later\r\n")
                    protocol.transport.close()


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP that registers itself while connected, for the drain."""

    def __init__(self, sessions: Sessions, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._registry = sessions

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd enforces SIZE itself, with replies that lack the enhanced
        # status code the contract promises.
        if isinstance(status, str) and status.startswith("552 Error:"):
            await super().push("552 5.3.4 Message size exceeds fixed limit")
        else:
            await super().push(status)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._registry.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        super().connection_lost(exc)


async def serve(settings: IngressSettings) -> None:
    policy = PolicyClient(settings.policy_addr, settings.policy_timeout)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    handler = RelayHandler(policy, redis, settings.hostname)
    sessions = Sessions()

    def factory() -> RelaySMTP:
        return RelaySMTP(
            sessions,
            handler=handler,
            hostname=settings.hostname,
            ident="smarthost",
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
        )

    host, port = split_hostport(settings.smtp_listen)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(factory, host, port)
    except OSError as exc:
        raise SystemExit(f"configuration error: SMARTHOST_SMTP_LISTEN: {settings.smtp_listen}: {exc}") from None
    probes = HealthServer(settings.metrics_listen)
    probes.start()
    probes.ready = True
    log.info("ingress listening", extra={"listen": settings.smtp_listen, "policy": settings.policy_addr})

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("ingress draining", extra={"sessions": len(sessions.active), "timeout": settings.drain_timeout})
    probes.ready = False
    server.close()
    await sessions.drain(settings.drain_timeout)
    await policy.close()
    await redis.aclose()
    probes.stop()
    log.info("ingress stopped")


def main() -> None:
    settings = load_settings(IngressSettings)
    setup_logging(settings.log_level)
    asyncio.run(serve(settings))
