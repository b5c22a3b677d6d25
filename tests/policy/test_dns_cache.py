"""The DNS cache against a real dnsmasq that logs every query it gets."""

import asyncio
import smtplib
from concurrent.futures import ThreadPoolExecutor

import dns.rdatatype
from support.dns_server import DnsServer
from support.policy_zone import SENDER
from support.processes import Process, ProcessGroup
from support.relay import Relay
from support.smtp_replies import status

from smarthost_common.dns import make_resolver
from smarthost_policy.dns_cache import DnsCache
from smarthost_policy.routability import Routability, Route


def dnsmasq(processes: ProcessGroup) -> Process:
    return next(p for p in processes.processes if p.name.startswith("dnsmasq"))


def queries(processes: ProcessGroup, question: str) -> int:
    """How often dnsmasq was asked `question`, e.g. "query[MX] example.test"."""
    return dnsmasq(processes).log().count(f"{question} from")


def test_a_burst_of_mail_to_one_domain_costs_one_lookup(policy_relay: Relay, processes: ProcessGroup) -> None:
    ingress = policy_relay.start_ingress(policy_relay.start_policy())

    def session(n: int) -> str:
        with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
            client.ehlo("customer.test")
            client.mail(SENDER)
            return status(client.rcpt(f"bob{n}@example.test"))

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(session, range(30))) == {"250 2.1.5"}
    assert queries(processes, "query[MX] example.test") == 1
    assert queries(processes, "query[A] mx.example.test") == 1
    assert queries(processes, "query[MX] sender.test") == 1


def test_negative_answers_without_soa_are_not_cached_and_the_cache_is_bounded(
    policy_dns: DnsServer, processes: ProcessGroup
) -> None:
    async def scenario() -> None:
        cache = DnsCache(make_resolver(policy_dns.address, 2.0), max_entries=2)
        routes = Routability(cache, 2.0)
        # dnsmasq's NXDOMAIN carries no SOA: RFC 2308 says not to cache it.
        assert await routes.route("unknown.test", require_mx=True) == Route.NO_DOMAIN
        assert await routes.route("unknown.test", require_mx=True) == Route.NO_DOMAIN
        assert len(cache) == 0
        for domain in ("sender.test", "example.test", "nullmx.test"):
            await cache.query(domain, dns.rdatatype.MX)
        assert len(cache) == 2
        # sender.test was the least recently used: asked again; nullmx.test comes from the cache.
        await cache.query("sender.test", dns.rdatatype.MX)
        await cache.query("nullmx.test", dns.rdatatype.MX)

    asyncio.run(scenario())
    assert queries(processes, "query[MX] unknown.test") == 2
    assert queries(processes, "query[MX] sender.test") == 2
    assert queries(processes, "query[MX] nullmx.test") == 1


def test_a_dead_resolver_answers_tempfail_within_the_deadline(policy_dns: DnsServer) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        routes = Routability(DnsCache(make_resolver(policy_dns.address, 1.0), max_entries=10), 1.0)
        started = loop.time()
        # MX answered, then the target's A query is never answered.
        assert await routes.route("slowmx.test", require_mx=True) == Route.TEMPFAIL
        assert loop.time() - started < 2.5

    asyncio.run(scenario())
