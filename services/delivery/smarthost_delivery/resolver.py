"""Where mail for a domain goes: MX hosts in preference order, then addresses.

Answers are remembered for their TTL (MX for the domain, addresses for the
host), so mail to a busy destination costs no lookup per message: only
failures and names without any answer go to the resolver each time (whose
own cache answers those within their TTL).
"""

import random
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

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


# Names whose answers are remembered at most; past it the memory starts afresh.
MAX_REMEMBERED = 10_000

T = TypeVar("T")


class _Answers(Generic[T]):
    """Answers by name until their expiry (Unix time, as dnspython gives it)."""

    def __init__(self) -> None:
        self._answers: dict[str, tuple[float, T]] = {}

    def get(self, name: str) -> T | None:
        found = self._answers.get(name)
        if found is None or found[0] <= time.time():
            return None
        return found[1]

    def put(self, name: str, expiry: float, answer: T) -> None:
        if len(self._answers) >= MAX_REMEMBERED:
            self._answers.clear()
        self._answers[name] = (expiry, answer)


class MxResolver:
    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver
        self._mx = _Answers[list[MxHost]]()
        self._addresses = _Answers[list[str]]()

    async def mx_hosts(self, domain: str) -> list[MxHost]:
        """MX hosts, best first, equal preferences shuffled (RFC 5321 5.1).

        A domain without MX records is its own mail host (the implicit MX).
        """
        hosts = self._mx.get(domain)
        if hosts is None:
            hosts = await self._lookup_mx(domain)
        if len(hosts) > 1:
            hosts = list(hosts)
            random.shuffle(hosts)
            hosts.sort(key=lambda host: host.preference)
        return hosts

    async def _lookup_mx(self, domain: str) -> list[MxHost]:
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
        self._mx.put(domain, answer.expiration, hosts)
        return hosts

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of an MX host; empty when it has none.

        Remembered until the first of its answers expires (a type without
        records is asked again then).
        """
        found = self._addresses.get(host)
        if found is not None:
            return found
        found = []
        expiry = float("inf")
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                raise TemporaryDnsError(f"address lookup for {host} failed: {exc.__class__.__name__}") from exc
            found.extend(record.to_text() for record in answer)
            expiry = min(expiry, answer.expiration)
        if found:
            self._addresses.put(host, expiry, found)
        return found
