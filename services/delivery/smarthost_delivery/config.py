"""Settings of `smarthost-delivery`, from `SMARTHOST_*` environment variables."""

import os
import socket
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

from smarthost_common.durations import parse_schedule
from smarthost_common.settings import DnsServers, Duration, HostPort, Networks, ServiceSettings, SpoolUrl


def _schedule(value: object) -> object:
    return parse_schedule(value) if isinstance(value, str) else value


class DeliverySettings(ServiceSettings):
    dns_servers: DnsServers = ""
    delivery_port: int = Field(default=25, gt=0, lt=65536)
    # Internal ranges delivery may connect to anyway (tests: 127.0.0.0/8).
    delivery_allow_networks: Networks = ()
    # Waits between attempts; the last one repeats. Like Postfix's backoff.
    retry_schedule: Annotated[list[float], NoDecode, BeforeValidator(_schedule)] = [300, 600, 1200, 2400, 4000]
    max_queue_lifetime: Duration = Field(default=5 * 86400, gt=0)
    # Messages one worker process delivers at once (Postfix: 100 processes, 20 per destination).
    delivery_concurrency: int = Field(default=100, gt=0)
    # Bytes of message bodies one worker holds at once, whatever the concurrency.
    delivery_memory_limit: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # Per SMTP command and for the end of DATA, as RFC 5321 4.5.3.2 suggests.
    delivery_timeout: Duration = Field(default=300.0, gt=0)
    # TCP connect plus the greeting, per MX address (Postfix: 30s).
    delivery_connect_timeout: Duration = Field(default=30.0, gt=0)
    # `opportunistic`: STARTTLS when offered; `required`: never send in clear.
    delivery_tls: Literal["opportunistic", "required"] = "opportunistic"
    # How long an idle connection to an MX is kept for the next message; 0 = never reused.
    delivery_connection_idle: Duration = Field(default=5.0, ge=0)
    # Open SMTP transactions per destination domain across all pods.
    destination_concurrency: int = Field(default=20, gt=0)
    # Send a delay notice when a message has waited this long; 0 = never.
    delay_warning: Duration = Field(default=4 * 3600, ge=0)
    # A live worker refreshes a key with this TTL; once it runs out, the worker's mail is taken over.
    heartbeat_ttl: Duration = Field(default=15.0, ge=3)
    # Last resort for entries of a worker that beats but never settles them (hung): claimed after this idle time.
    claim_idle: Duration = Field(default=600.0, gt=0)
    # Deliveries of one stream entry (workers crashing on it) before it is dead-lettered.
    dead_letter_after: int = Field(default=5, gt=1)
    # How often a worker reads the queue's size and oldest age for its gauges.
    queue_metrics_interval: Duration = Field(default=15.0, gt=0)
    # The queue's disk tier (PostgreSQL): deferred messages' bodies move there.
    spool_url: SpoolUrl | None = None
    metrics_listen: HostPort = "0.0.0.0:9102"
    consumer_name: str = f"{socket.gethostname()}-{os.getpid()}"
