"""The ingress side of PolicyService: deadlines, round-robin, fail closed, reuse of what the policy allows."""

import json
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol, TypeVar

import grpc
from smarthost.policy.v1 import policy_pb2 as pb
from smarthost.policy.v1.policy_pb2_grpc import PolicyServiceStub

from smarthost_ingress.metrics import POLICY_CALLS
from smarthost_ingress.policy_reuse import ReuseCache, scope_domain

log = logging.getLogger("smarthost.ingress")

# Round-robin over every address `dns:///policy:50051` resolves to, and a
# retry when a replica went away between resolution and the call.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": "smarthost.policy.v1.PolicyService"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)
CHANNEL_OPTIONS = [
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    # Must stay above the server's min_ping_interval_without_data (20 s).
    ("grpc.keepalive_time_ms", 30 * 1000),
    ("grpc.keepalive_timeout_ms", 10 * 1000),
]

UNAVAILABLE = pb.Verdict(
    action=pb.ACTION_TEMPFAIL, code=451, enhanced_code="4.3.0", text="Policy service unavailable, try again later"
)


class _HasVerdict(Protocol):
    @property
    def verdict(self) -> pb.Verdict: ...


Response = TypeVar("Response", bound=_HasVerdict)


class _Reusable(_HasVerdict, Protocol):
    @property
    def reuse_ms(self) -> int: ...


Reusable = TypeVar("Reusable", bound=_Reusable)


class PolicyClient:
    def __init__(self, target: str, timeout: float) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = PolicyServiceStub(self._channel)
        self._timeout = timeout
        # Verdicts the policy marked reusable, by the scope policy.proto gives them.
        self._connections: ReuseCache[pb.CheckConnectionResponse] = ReuseCache()
        self._senders: ReuseCache[pb.CheckSenderResponse] = ReuseCache()
        self._recipients: ReuseCache[pb.CheckRecipientResponse] = ReuseCache()

    async def close(self) -> None:
        await self._channel.close()

    async def check_connection(self, request: pb.CheckConnectionRequest) -> pb.CheckConnectionResponse:
        return await self._reusing(
            "CheckConnection",
            self._connections,
            (request.session.client_ip, request.session.auth_user),
            lambda _: True,
            lambda: self._call("CheckConnection", self._stub.CheckConnection, request, pb.CheckConnectionResponse),
            lambda _: 0,
        )

    async def check_sender(self, request: pb.CheckSenderRequest) -> pb.CheckSenderResponse:
        domain = scope_domain(request.mail_from)
        return await self._reusing(
            "CheckSender",
            self._senders,
            None if domain is None else (request.session.client_ip, request.session.auth_user, domain),
            lambda max_size: request.declared_size <= max_size,
            lambda: self._call("CheckSender", self._stub.CheckSender, request, pb.CheckSenderResponse),
            lambda response: response.reuse_max_size,
        )

    async def check_recipient(self, request: pb.CheckRecipientRequest) -> pb.CheckRecipientResponse:
        domain = scope_domain(request.rcpt_to)
        return await self._reusing(
            "CheckRecipient",
            self._recipients,
            None if domain is None else (request.session.client_ip, request.session.auth_user, domain),
            lambda max_recipients: request.accepted_recipients < max_recipients,
            lambda: self._call("CheckRecipient", self._stub.CheckRecipient, request, pb.CheckRecipientResponse),
            lambda response: response.reuse_max_recipients,
        )

    async def check_message(self, request: pb.CheckMessageRequest) -> pb.CheckMessageResponse:
        return await self._call("CheckMessage", self._stub.CheckMessage, request, pb.CheckMessageResponse)

    async def authenticate(self, request: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        return await self._call("Authenticate", self._stub.Authenticate, request, pb.AuthenticateResponse)

    async def release_message(self, request: pb.ReleaseMessageRequest) -> bool:
        """Whether the policy service answered (the count is back, or there was none)."""
        try:
            await self._stub.ReleaseMessage(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            POLICY_CALLS.labels(rpc="ReleaseMessage", result=exc.code().name.lower()).inc()
            return False
        POLICY_CALLS.labels(rpc="ReleaseMessage", result="ok").inc()
        return True

    async def _reusing(
        self,
        rpc: str,
        cache: ReuseCache[Reusable],
        key: Hashable | None,
        covers: Callable[[int], bool],
        ask: Callable[[], Awaitable[Reusable]],
        bound: Callable[[Reusable], int],
    ) -> Reusable:
        """A kept verdict whose bound `covers` this request, else the policy's answer, kept if it may be reused.

        `key` is the scope a verdict is kept for; None when the request has none.
        """
        kept = cache.get(key) if key is not None else None
        if kept is not None and covers(kept[0]):
            _count_reuse(rpc)
            return kept[1]
        response = await ask()
        if response.reuse_ms and key is not None:
            cache.put(key, response, response.reuse_ms, bound(response))
        return response

    async def _call(
        self,
        rpc: str,
        method: Callable[..., Awaitable[Response]],
        request: object,
        response_type: Callable[..., Response],
    ) -> Response:
        """Any failure to get an answer is a temporary failure: fail closed."""
        try:
            response = await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            POLICY_CALLS.labels(rpc=rpc, result=exc.code().name.lower()).inc()
            log.warning("policy call failed", extra={"rpc": rpc, "code": exc.code().name, "details": exc.details()})
            return response_type(verdict=UNAVAILABLE)
        if response.verdict.action == pb.ACTION_UNSPECIFIED:
            POLICY_CALLS.labels(rpc=rpc, result="no_action").inc()
            log.error("policy answered without an action", extra={"rpc": rpc})
            return response_type(verdict=UNAVAILABLE)
        POLICY_CALLS.labels(rpc=rpc, result="ok").inc()
        return response


def _count_reuse(rpc: str) -> None:
    """A kept answer is counted beside the calls, so the share of reuse shows."""
    POLICY_CALLS.labels(rpc=rpc, result="reused").inc()
