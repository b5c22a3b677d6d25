"""DNS answers cached for their TTL, shared by every check of one policy replica.

Positive answers live for their TTL, NXDOMAIN and NODATA for the negative TTL
of the zone's SOA (RFC 2308), each capped. Concurrent questions for the same
name and type share one query, so a burst of mail to one domain costs one
lookup. The cache holds at most `max_entries` answers, least recently used
out first. Failures (timeout, SERVFAIL) are never cached.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.resolver
from prometheus_client import Counter

LOOKUPS = Counter("smarthost_policy_dns_lookups_total", "DNS queries sent, by outcome", ["result"])
CACHE_HITS = Counter("smarthost_policy_dns_cache_hits_total", "DNS questions answered from the cache")

MAX_TTL = 3600.0
MAX_NEGATIVE_TTL = 900.0


class DnsTempFail(Exception):
    """No usable answer now (timeout, SERVFAIL, no server reachable): try again later."""


@dataclass(frozen=True)
class Answer:
    records: tuple[dns.rdata.Rdata, ...]
    # True when the name does not exist at all; records is then empty.
    nxdomain: bool = False


@dataclass(frozen=True)
class _Entry:
    answer: Answer
    expires: float


class DnsCache:
    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, dns.rdatatype.RdataType], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, dns.rdatatype.RdataType], asyncio.Future[Answer]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def query(self, name: str, rdtype: dns.rdatatype.RdataType) -> Answer:
        """The answer for the absolute name `name`; raises DnsTempFail."""
        key = (name.lower().rstrip("."), rdtype)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires > self._clock():
                self._entries.move_to_end(key)
                CACHE_HITS.inc()
                return entry.answer
            del self._entries[key]
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(key))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: one waiter giving up (its own deadline) must not cancel
        # the query the others are waiting on.
        return await asyncio.shield(pending)

    def _finished(self, key: tuple[str, dns.rdatatype.RdataType], done: "asyncio.Future[Answer]") -> None:
        self._inflight.pop(key, None)
        # Marks a failure as seen even when every waiter had already given up.
        if not done.cancelled():
            done.exception()

    async def _lookup(self, key: tuple[str, dns.rdatatype.RdataType]) -> Answer:
        name, rdtype = key
        qname = dns.name.from_text(name, origin=dns.name.root)
        try:
            result = await self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
            if result.rrset is not None:
                answer, ttl = Answer(tuple(result.rrset)), float(result.chaining_result.minimum_ttl)
            else:
                answer, ttl = Answer(()), _negative_ttl(result.response)
        except dns.resolver.NXDOMAIN as exc:
            answer = Answer((), nxdomain=True)
            responses = exc.responses().values()  # type: ignore[no-untyped-call]
            ttl = min((_negative_ttl(response) for response in responses), default=0.0)
        except dns.exception.DNSException as exc:
            LOOKUPS.labels(result="tempfail").inc()
            raise DnsTempFail(f"{name} {dns.rdatatype.to_text(rdtype)}: {exc}") from exc
        LOOKUPS.labels(result="nxdomain" if answer.nxdomain else "answer" if answer.records else "nodata").inc()
        self._store(key, answer, min(ttl, MAX_TTL if answer.records else MAX_NEGATIVE_TTL))
        return answer

    def _store(self, key: tuple[str, dns.rdatatype.RdataType], answer: Answer, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries[key] = _Entry(answer, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _negative_ttl(response: dns.message.Message) -> float:
    """RFC 2308: the SOA's own TTL or its MINIMUM, the smaller; without a SOA, not cached."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return float(min(rrset.ttl, *(soa.minimum for soa in rrset)))
    return 0.0
