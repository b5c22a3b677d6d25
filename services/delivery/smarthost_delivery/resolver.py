"""Where mail for a domain goes: MX hosts in preference order, then addresses."""

import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver


class TemporaryDnsError(Exception):
    """SERVFAIL, timeout: try again later."""


class PermanentDnsError(Exception):
    """NXDOMAIN, null MX: this domain does not take mail; carries the reply to report."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class MxHost:
    preference: int
    name: str


class MxResolver:
    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def mx_hosts(self, domain: str) -> list[MxHost]:
        """MX hosts, best first, equal preferences shuffled (RFC 5321 5.1).

        A domain without MX records is its own mail host (the implicit MX).
        """
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN as exc:
            raise PermanentDnsError(550, f"5.1.2 domain {domain} does not exist") from exc
        except dns.resolver.NoAnswer:
            return [MxHost(0, domain)]
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise TemporaryDnsError(f"MX lookup for {domain} failed: {exc.__class__.__name__}") from exc
        if any(record.exchange == dns.name.root for record in answer):
            raise PermanentDnsError(556, f"5.1.10 domain {domain} accepts no mail (null MX, RFC 7505)")
        hosts = [MxHost(record.preference, record.exchange.to_text(omit_final_dot=True)) for record in answer]
        random.shuffle(hosts)
        return sorted(hosts, key=lambda host: host.preference)

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of an MX host; empty when it has none."""
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                raise TemporaryDnsError(f"address lookup for {host} failed: {exc.__class__.__name__}") from exc
            found.extend(record.to_text() for record in answer)
        return found
