"""`smarthost-policy`: the gRPC policy server and its lifecycle."""

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from smarthost.policy.v1 import policy_pb2
from smarthost.policy.v1.policy_pb2_grpc import add_PolicyServiceServicer_to_server

from smarthost_common.health import HealthServer
from smarthost_common.logs import setup_logging
from smarthost_common.settings import load_settings
from smarthost_policy.auth import Users
from smarthost_policy.config import PolicySettings
from smarthost_policy.customers import CustomerIndex
from smarthost_policy.policy_file import PolicyFile, load_policy
from smarthost_policy.service import PolicyService

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


def initial_policy(settings: PolicySettings) -> PolicyFile:
    if settings.policy_file is None:
        log.warning("SMARTHOST_POLICY_FILE is not set: no customers, every client is refused")
        return PolicyFile()
    try:
        return load_policy(settings.policy_file)
    except ValueError as exc:
        raise SystemExit(f"configuration error: SMARTHOST_POLICY_FILE: {exc}") from None


async def serve(settings: PolicySettings) -> None:
    policy = initial_policy(settings)
    index = CustomerIndex(policy)
    users = Users(policy)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_PolicyServiceServicer_to_server(PolicyService(lambda: index, lambda: users), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if not server.add_insecure_port(settings.policy_listen):
        raise SystemExit(f"configuration error: SMARTHOST_POLICY_LISTEN: cannot listen on {settings.policy_listen}")
    probes = HealthServer(settings.metrics_listen)
    probes.start()
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    probes.ready = True
    log.info("policy listening", extra={"listen": settings.policy_listen, "customers": len(policy.customers)})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("policy draining")
    probes.ready = False
    await health_servicer.enter_graceful_shutdown()
    await server.stop(DRAIN_SECONDS)
    probes.stop()
    log.info("policy stopped")


def main() -> None:
    settings = load_settings(PolicySettings)
    setup_logging(settings.log_level)
    asyncio.run(serve(settings))
