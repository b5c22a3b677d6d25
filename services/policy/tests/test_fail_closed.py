"""An unexpected error in any check is a temporary failure, never an accept."""

import asyncio
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_common.dns import make_resolver
from smarthost_policy.auth import Users
from smarthost_policy.customers import CustomerIndex
from smarthost_policy.dns_cache import DnsCache
from smarthost_policy.rate_limit import RateLimiter
from smarthost_policy.routability import Routability
from smarthost_policy.service import PolicyService
from smarthost_policy.usage import CustomerUsage


def broken_index() -> CustomerIndex:
    raise RuntimeError("index corrupted")


def broken_users() -> Users:
    raise RuntimeError("users corrupted")


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("CheckConnection", pb.CheckConnectionRequest(session=pb.Session(client_ip="127.0.0.1"))),
        ("CheckSender", pb.CheckSenderRequest(session=pb.Session(client_ip="127.0.0.1"), mail_from="a@b.test")),
        ("CheckRecipient", pb.CheckRecipientRequest(session=pb.Session(client_ip="127.0.0.1"), rcpt_to="a@b.test")),
        ("CheckMessage", pb.CheckMessageRequest(session=pb.Session(client_ip="127.0.0.1"), size=10)),
        ("CheckMessage", pb.CheckMessageRequest(session=pb.Session(client_ip="", auth_user="u"), size=10)),
    ],
)
def test_unexpected_errors_are_451_4_3_0(rpc: str, request_: Any) -> None:
    async def call() -> pb.Verdict:
        routability = Routability(DnsCache(make_resolver("127.0.0.1:9", 1.0), 10), 1.0)
        redis = Redis.from_url("redis://127.0.0.1:9/0")
        service = PolicyService(
            broken_index, broken_users, routability, RateLimiter(redis, timeout=2.0), CustomerUsage(redis)
        )
        response = await getattr(service, rpc)(request_, cast(Any, None))
        return cast(pb.Verdict, response.verdict)

    verdict = asyncio.run(call())
    assert (verdict.action, verdict.code, verdict.enhanced_code) == (pb.ACTION_TEMPFAIL, 451, "4.3.0")
