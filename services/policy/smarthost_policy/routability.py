"""Is a domain routable: can mail for it be delivered, as RFC 5321 5.1 and RFC 7505 say.

By default a domain needs an MX whose target resolves (`requireMx: true`);
with `requireMx: false` a domain without MX records falls back to its own
A/AAAA records. Each check is bounded by one deadline, so a dead resolver
answers TEMPFAIL quickly instead of holding the SMTP session.
"""

import asyncio
import enum

import dns.name
import dns.rdatatype
from dns.rdtypes.ANY.MX import MX

from smarthost_policy.dns_cache import DnsCache, DnsTempFail


class Route(enum.Enum):
    ROUTABLE = "routable"
    NO_DOMAIN = "nxdomain"
    NO_MX = "no-mx"
    MX_UNRESOLVABLE = "mx-unresolvable"
    NULL_MX = "null-mx"
    TEMPFAIL = "tempfail"


class Routability:
    def __init__(self, cache: DnsCache, deadline: float) -> None:
        self._cache = cache
        self._deadline = deadline

    async def route(self, domain: str, require_mx: bool) -> Route:
        """How mail to the A-label `domain` would be routed."""
        try:
            async with asyncio.timeout(self._deadline):
                return await self._route(domain, require_mx)
        except (TimeoutError, DnsTempFail):
            return Route.TEMPFAIL

    async def _route(self, domain: str, require_mx: bool) -> Route:
        mx = await self._cache.query(domain, dns.rdatatype.MX)
        if mx.nxdomain:
            return Route.NO_DOMAIN
        if not mx.records:
            if not require_mx and await self._resolves(domain):
                return Route.ROUTABLE
            return Route.NO_MX
        # RFC 7505: a lone MX with the root as target says "no mail here". A
        # root target next to real ones is a misconfiguration: ignore it.
        exchanges = [record.exchange for record in mx.records if isinstance(record, MX)]
        targets = {str(exchange) for exchange in exchanges if exchange != dns.name.root}
        if not targets:
            return Route.NULL_MX
        results = await asyncio.gather(*(self._resolves(target) for target in targets), return_exceptions=True)
        if any(result is True for result in results):
            return Route.ROUTABLE
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return Route.MX_UNRESOLVABLE

    async def _resolves(self, name: str) -> bool:
        """Has `name` an address record (A first, AAAA when there is none)?"""
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            answer = await self._cache.query(name, rdtype)
            if answer.nxdomain:
                return False
            if answer.records:
                return True
        return False
