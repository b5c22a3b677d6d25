"""One way to build a resolver for every service: `SMARTHOST_DNS_SERVERS`."""

import dns.asyncresolver

from smarthost_common.net import split_hostport


def parse_servers(text: str) -> list[tuple[str, int]]:
    """`ip[:port]`, comma separated; `[v6]:port` for IPv6 with a port."""
    servers = []
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        if part.count(":") == 1 or part.startswith("["):
            servers.append(split_hostport(part))
        else:
            servers.append((part, 53))
    return servers


def make_resolver(servers: str, timeout: float) -> dns.asyncresolver.Resolver:
    """The system resolver, or the given servers; every query bounded by `timeout`."""
    resolver = dns.asyncresolver.Resolver(configure=not servers)
    if servers:
        parsed = parse_servers(servers)
        resolver.nameservers = [host for host, _ in parsed]
        resolver.nameserver_ports = {host: port for host, port in parsed}
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver
