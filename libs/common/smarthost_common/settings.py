"""Environment settings: every service reads `SMARTHOST_*` through pydantic.

A bad or missing value stops the service at start-up with a message that names
the variable, never later in the middle of a transaction.
"""

import socket
import sys
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from smarthost_common.dns import parse_servers
from smarthost_common.durations import parse_duration
from smarthost_common.net import split_hostport
from smarthost_common.spool import check_url

PREFIX = "SMARTHOST_"


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


def _hostport(value: str) -> str:
    split_hostport(value)
    return value


def _sentinels(value: str) -> str:
    for item in value.split(","):
        if item.strip():
            split_hostport(item.strip())
    return value


def _dns_servers(value: str) -> str:
    parse_servers(value)
    return value


def _networks(value: object) -> object:
    if not isinstance(value, str):
        return value
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ip_network(item))
        except ValueError:
            raise ValueError(f"{item!r} is not a network like 10.0.0.0/8 (with host bits zero)") from None
    return tuple(networks)


# Seconds, written in the environment as `90s`, `10m`, `6h`, `5d`.
Duration = Annotated[float, BeforeValidator(_duration)]
# A listen or connect address, `host:port` or `[v6]:port`.
HostPort = Annotated[str, AfterValidator(_hostport)]
# `10.0.0.0/8,2001:db8::/32`, as operators write lists in one variable.
Networks = Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode, BeforeValidator(_networks)]
# `ip[:port]`, comma separated; empty means the system resolver.
DnsServers = Annotated[str, AfterValidator(_dns_servers)]
# The PostgreSQL disk tier of the queue, `postgresql://user:pass@host/db`.
SpoolUrl = Annotated[str, AfterValidator(check_url)]


class ServiceSettings(BaseSettings):
    """Settings every service shares."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    # `host:port,...` of Redis Sentinels; when set, they name the primary (the URL's host is then unused).
    redis_sentinels: Annotated[str, AfterValidator(_sentinels)] = ""
    redis_sentinel_master: str = "smarthost"
    hostname: str = socket.getfqdn()
    log_level: str = "INFO"
    metrics_listen: HostPort


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build `cls` from the environment or exit naming the bad variables."""
    try:
        return cls()
    except ValidationError as exc:
        for error in exc.errors():
            name = PREFIX + "_".join(str(part) for part in error["loc"]).upper()
            print(f"configuration error: {name}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
