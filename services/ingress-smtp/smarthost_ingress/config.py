"""Settings of `smarthost-ingress`, from `SMARTHOST_*` environment variables."""

from pydantic import Field

from smarthost_common.settings import Duration, HostPort, ServiceSettings


class IngressSettings(ServiceSettings):
    smtp_listen: HostPort = "0.0.0.0:2525"
    policy_addr: str = "127.0.0.1:50051"
    # Deadline of each policy call; past it the client hears 451 4.3.0.
    policy_timeout: Duration = Field(default=5.0, gt=0)
    metrics_listen: HostPort = "0.0.0.0:9100"
    # Largest DATA accepted before the policy has named the customer's limit.
    max_message_size: int = Field(default=20 * 1024 * 1024, gt=0)
    drain_timeout: Duration = Field(default=60.0, ge=0)
