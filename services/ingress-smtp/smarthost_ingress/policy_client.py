"""The ingress side of PolicyService: deadlines, round-robin, fail closed, reuse of what the policy allows."""

import json
import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
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
Kept = TypeVar("Kept")


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
        session = request.session
        key = (session.client_ip, session.auth_user)
        kept = self._connections.get(key)
        if kept is not None:
            return _reused("CheckConnection", kept[1])
        response: pb.CheckConnectionResponse = await self._call(
            "CheckConnection", self._stub.CheckConnection, request, pb.CheckConnectionResponse
        )
        if response.reuse_ms:
            self._connections.put(key, response, response.reuse_ms)
        return response

    async def check_sender(self, request: pb.CheckSenderRequest) -> pb.CheckSenderResponse:
        key = _domain_scope(request.session, request.mail_from)
        kept = self._senders.get(key) if key is not None else None
        # The kept bound is the largest SIZE the verdict covers.
        if kept is not None and request.declared_size <= kept[0]:
            return _reused("CheckSender", kept[1])
        response: pb.CheckSenderResponse = await self._call(
            "CheckSender", self._stub.CheckSender, request, pb.CheckSenderResponse
        )
        if response.reuse_ms and key is not None:
            self._senders.put(key, response, response.reuse_ms, response.reuse_max_size)
        return response

    async def check_recipient(self, request: pb.CheckRecipientRequest) -> pb.CheckRecipientResponse:
        key = _domain_scope(request.session, request.rcpt_to)
        kept = self._recipients.get(key) if key is not None else None
        # The kept bound is the recipient count the verdict holds under.
        if kept is not None and request.accepted_recipients < kept[0]:
            return _reused("CheckRecipient", kept[1])
        response: pb.CheckRecipientResponse = await self._call(
            "CheckRecipient", self._stub.CheckRecipient, request, pb.CheckRecipientResponse
        )
        if response.reuse_ms and key is not None:
            self._recipients.put(key, response, response.reuse_ms, response.reuse_max_recipients)
        return response

    async def check_message(self, request: pb.CheckMessageRequest) -> pb.CheckMessageResponse:
        return await self._call("CheckMessage", self._stub.CheckMessage, request, pb.CheckMessageResponse)

    async def authenticate(self, request: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        return await self._call("Authenticate", self._stub.Authenticate, request, pb.AuthenticateResponse)

    async def release_message(self, request: pb.ReleaseMessageRequest) -> bool:
        """Whether the policy service answered (the count is back, or there was none)."""
        try:
            await self._stub.ReleaseMessage(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            _calls("ReleaseMessage", exc.code().name.lower()).inc()
            return False
        _calls("ReleaseMessage", "ok").inc()
        return True

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
            _calls(rpc, exc.code().name.lower()).inc()
            log.warning("policy call failed", extra={"rpc": rpc, "code": exc.code().name, "details": exc.details()})
            return response_type(verdict=UNAVAILABLE)
        if response.verdict.action == pb.ACTION_UNSPECIFIED:
            _calls(rpc, "no_action").inc()
            log.error("policy answered without an action", extra={"rpc": rpc})
            return response_type(verdict=UNAVAILABLE)
        _calls(rpc, "ok").inc()
        return response


# Each (rpc, result) child looked up once: `labels()` costs microseconds per call.
_calls = lru_cache(maxsize=None)(POLICY_CALLS.labels)


def _reused(rpc: str, response: Kept) -> Kept:
    """A kept answer is counted beside the calls, so the share of reuse shows."""
    _calls(rpc, "reused").inc()
    return response


def _domain_scope(session: pb.Session, address: str) -> tuple[str, str, str] | None:
    """What a sender's or recipient's verdict is kept for: the client, its AUTH user and the domain."""
    domain = scope_domain(address)
    return None if domain is None else (session.client_ip, session.auth_user, domain)
