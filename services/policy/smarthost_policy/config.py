"""Settings of `smarthost-policy`, from `SMARTHOST_*` environment variables."""

from pathlib import Path

from smarthost_common.settings import DnsServers, HostPort, ServiceSettings


class PolicySettings(ServiceSettings):
    policy_file: Path | None = None
    policy_listen: HostPort = "0.0.0.0:50051"
    metrics_listen: HostPort = "0.0.0.0:9101"
    dns_servers: DnsServers = ""
