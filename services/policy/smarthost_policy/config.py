"""Settings of `smarthost-policy`, from `SMARTHOST_*` environment variables."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from smarthost_common.settings import DnsServers, Duration, HostPort, ServiceSettings


class PolicySettings(ServiceSettings):
    policy_file: Path | None = None
    # Where customers come from: the policy file only, or also RelayCustomer
    # objects in the cluster (the file, if any, still gives the defaults).
    policy_source: Literal["file", "kubernetes"] = "file"
    # Namespace of the RelayCustomer objects; default: the pod's own.
    policy_namespace: str = ""
    # How often the policy file is re-read to notice a change.
    policy_reload_interval: Duration = Field(default=5.0, gt=0)
    policy_listen: HostPort = "0.0.0.0:50051"
    metrics_listen: HostPort = "0.0.0.0:9101"
    dns_servers: DnsServers = ""
    # Whole routability check of one domain; past it the reply is 451 4.4.3.
    dns_timeout: Duration = Field(default=3.0, gt=0, le=30)
    # DNS answers kept in the cache at most.
    dns_cache_size: int = Field(default=10000, gt=0)
    # How long the ingress may reuse a verdict the policy marks reusable
    # (a customer's network, a domain's routability); 0 turns reuse off. A
    # policy change reaches every ingress within this (after it is loaded).
    policy_reuse_time: Duration = Field(default=5.0, ge=0, le=300)
    # Name the customer on the per-customer counters (one series per customer: see docs/operations.md).
    metrics_customer_label: bool = False
