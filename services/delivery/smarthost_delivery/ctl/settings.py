"""Settings of `smarthostctl`, from the same `SMARTHOST_*` variables as the services."""

from pydantic import Field

from smarthost_common.settings import DnsServers, Duration, ServiceSettings, SpoolUrl


class CtlSettings(ServiceSettings):
    metrics_listen: str = "127.0.0.1:0"
    # For `policy check`: the policy service, as the ingress reaches it.
    policy_addr: str = "127.0.0.1:50051"
    policy_timeout: Duration = Field(default=5.0, gt=0)
    # The disk tier, for the bodies `queue show` and `queue delete --bounce` read, and `queue stats`.
    spool_url: SpoolUrl | None = None
    # For `dkim check`: where the published key records are looked up.
    dns_servers: DnsServers = ""
    dns_timeout: Duration = Field(default=5.0, gt=0)
