"""Settings of `smarthost-ingress`, from `SMARTHOST_*` environment variables."""

from pydantic import Field, FilePath, ValidationInfo, field_validator

from smarthost_common.settings import Duration, HostPort, Networks, ServiceSettings, SpoolUrl

MiB = 1024 * 1024


class IngressSettings(ServiceSettings):
    smtp_listen: HostPort = "0.0.0.0:2525"
    policy_addr: str = "127.0.0.1:50051"
    # Deadline of each policy call; past it the client hears 451 4.3.0.
    policy_timeout: Duration = Field(default=5.0, gt=0)
    metrics_listen: HostPort = "0.0.0.0:9100"
    # Largest DATA accepted before the policy has named the customer's limit.
    max_message_size: int = Field(default=20 * MiB, gt=0)
    drain_timeout: Duration = Field(default=60.0, ge=0)

    # The queue's disk tier (PostgreSQL); unset, message bodies live in Redis only.
    spool_url: SpoolUrl | None = None
    # Message bytes Redis may hold; past it new bodies go to the disk tier, or get 452 4.3.1 without one.
    queue_memory_max: int = Field(default=128 * MiB, ge=MiB)
    # Redis replicas that must hold a message (WAIT) before its 250; within the wait, else 451 and taken back.
    queue_min_replicas: int = Field(default=0, ge=0)
    queue_replica_wait: Duration = Field(default=1.0, gt=0)

    # STARTTLS: PEM certificate chain and key, re-read when either file changes.
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = Field(default=None, validate_default=True)
    # Submission listener (SMTP AUTH after STARTTLS); off when unset.
    submission_listen: HostPort | None = Field(default=None, validate_default=True)

    # Load balancers whose PROXY protocol header is believed; from them it is required.
    proxy_trusted: Networks = ()
    proxy_timeout: Duration = Field(default=10.0, gt=0)

    # Resource limits, each with the safe default named in the README.
    max_command_length: int = Field(default=2048, ge=512)
    max_line_length: int = Field(default=998, ge=78)
    max_header_size: int = Field(default=100 * 1024, ge=1000)
    max_recipients: int = Field(default=1000, gt=0)
    max_errors: int = Field(default=20, gt=0)
    command_timeout: Duration = Field(default=300.0, gt=0)
    data_timeout: Duration = Field(default=300.0, gt=0)
    max_connections: int = Field(default=1000, gt=0)
    max_connections_per_ip: int = Field(default=50, gt=0)
    # Bytes of message data all DATA transfers together may hold in memory.
    data_memory_limit: int = Field(default=256 * MiB, ge=MiB)
    data_memory_wait: Duration = Field(default=30.0, ge=0)

    # Failed SMTP AUTH per client IP: each failure answered more slowly, then refused.
    auth_max_failures: int = Field(default=5, gt=0)
    auth_failure_window: Duration = Field(default=900.0, gt=0)
    auth_failure_delay: Duration = Field(default=1.0, ge=0)
    # Postfix's smtpd_forbid_unauth_pipelining: false lets clients that logged
    # in break the pipelining rules; everyone else is always held to them.
    forbid_unauth_pipelining: bool = True

    @field_validator("tls_key")
    @classmethod
    def _cert_and_key_together(cls, key: FilePath | None, info: ValidationInfo) -> FilePath | None:
        # A cert that failed its own validation is reported once, there.
        if "tls_cert" in info.data and (key is None) != (info.data["tls_cert"] is None):
            raise ValueError("SMARTHOST_TLS_CERT and SMARTHOST_TLS_KEY must be set together")
        return key

    @field_validator("submission_listen")
    @classmethod
    def _submission_needs_tls(cls, listen: str | None, info: ValidationInfo) -> str | None:
        if listen is not None and "tls_cert" in info.data and info.data["tls_cert"] is None:
            raise ValueError("needs SMARTHOST_TLS_CERT and SMARTHOST_TLS_KEY: AUTH is only offered after STARTTLS")
        return listen
