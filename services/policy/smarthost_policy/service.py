"""PolicyService: one RPC per SMTP stage, each answering with a Verdict.

Every decision is counted and logged once: refusals and messages at INFO,
the earlier stages' accepts at DEBUG (the ingress's `queued` line tells
them). An unexpected error becomes a temporary failure, never an accept. A
verdict that depends only on what its reuse scope holds (see policy.proto)
is marked reusable for `reuse_ms`.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache

import grpc
from redis.exceptions import RedisError
from smarthost.policy.v1 import policy_pb2 as pb
from smarthost.policy.v1.policy_pb2_grpc import PolicyServiceServicer

from smarthost_common.durations import format_duration
from smarthost_policy import verdicts
from smarthost_policy.addresses import BadAddress, domain_of
from smarthost_policy.auth import Users, authenticate
from smarthost_policy.breaker import Breaker
from smarthost_policy.customers import CustomerIndex, Match
from smarthost_policy.metrics import DECISION_DURATION, DECISIONS, MESSAGES, RATE_LIMITED
from smarthost_policy.rate_limit import RateLimiter, rate_key
from smarthost_policy.routability import Routability, Route
from smarthost_policy.usage import CustomerUsage

log = logging.getLogger("smarthost.policy")


class PolicyService(PolicyServiceServicer):
    def __init__(
        self,
        index: Callable[[], CustomerIndex],
        users: Callable[[], Users],
        routability: Routability,
        rate: RateLimiter,
        usage: CustomerUsage,
        breaker: Breaker,
        customer_label: bool = False,
        reuse_ms: int = 0,
    ) -> None:
        # Callables, so a reloaded policy is seen by the next request.
        self._index = index
        self._users = users
        self._routability = routability
        self._rate = rate
        self._usage = usage
        self._breaker = breaker
        self._customer_label = customer_label
        # How long the ingress may reuse a verdict: a policy change reaches it within this.
        self._reuse_ms = reuse_ms

    async def CheckConnection(
        self, request: pb.CheckConnectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckConnectionResponse:
        async def check(match: Match) -> tuple[str, pb.Verdict]:
            refusal = self._breaker.refusal(match)
            return ("reputation", refusal) if refusal else ("network", verdicts.accept())

        verdict, match, rule = await self._decide("connection", request.session, check)
        # Depends on the client IP alone; an AUTH user's verdict is not reused.
        reuse_ms = self._reuse_ms if rule == "network" and not request.session.auth_user else 0
        if match is None or verdict.action != pb.ACTION_ACCEPT:
            return pb.CheckConnectionResponse(verdict=verdict, reuse_ms=reuse_ms)
        return pb.CheckConnectionResponse(
            verdict=verdict,
            customer=match.customer,
            max_message_size=match.limits.max_message_size,
            reuse_ms=reuse_ms,
        )

    async def CheckSender(
        self, request: pb.CheckSenderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckSenderResponse:
        async def check(match: Match) -> tuple[str, pb.Verdict]:
            limit = match.limits.max_message_size
            if request.declared_size > limit:
                return "size", verdicts.too_big(limit)
            if not request.mail_from:
                # The null reverse path (bounces) is allowed; it is counted at DATA.
                return "sender", verdicts.accept()
            try:
                domain = domain_of(request.mail_from)
            except BadAddress as exc:
                return "sender-syntax", verdicts.bad_sender(str(exc))
            route = await self._routability.route(domain, match.limits.require_mx)
            if route is not Route.ROUTABLE:
                return "sender-domain", verdicts.sender_route(route, domain)
            return "sender", verdicts.accept()

        verdict, match, rule = await self._decide("sender", request.session, check)
        if match is None or not self._reusable(rule, verdict, ("sender", "sender-domain")):
            return pb.CheckSenderResponse(verdict=verdict)
        # The size was checked first: the verdict holds for any SIZE within the limit.
        return pb.CheckSenderResponse(
            verdict=verdict, reuse_ms=self._reuse_ms, reuse_max_size=match.limits.max_message_size
        )

    async def CheckRecipient(
        self, request: pb.CheckRecipientRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckRecipientResponse:
        async def check(match: Match) -> tuple[str, pb.Verdict]:
            limit = match.limits.max_recipients
            if request.accepted_recipients >= limit:
                return "recipients", verdicts.too_many_recipients(limit)
            try:
                domain = domain_of(request.rcpt_to)
            except BadAddress as exc:
                return "recipient-syntax", verdicts.bad_recipient(str(exc))
            route = await self._routability.route(domain, match.limits.require_mx)
            if route is not Route.ROUTABLE:
                return "recipient-domain", verdicts.recipient_route(route, domain)
            return "recipient", verdicts.accept()

        verdict, match, rule = await self._decide("recipient", request.session, check)
        if match is not None and rule in _BOUNCES and verdict.action == pb.ACTION_REJECT:
            # A bounce the customer caused, for the breaker; so a refusal is not reused, or it would count once.
            self._breaker.bounced(match)
        if match is None or not self._reusable(rule, verdict, ("recipient",)):
            return pb.CheckRecipientResponse(verdict=verdict)
        # The count was checked first: the verdict holds while the count is under the limit.
        return pb.CheckRecipientResponse(
            verdict=verdict, reuse_ms=self._reuse_ms, reuse_max_recipients=match.limits.max_recipients
        )

    async def CheckMessage(
        self, request: pb.CheckMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckMessageResponse:
        async def check(match: Match) -> tuple[str, pb.Verdict]:
            limit = match.limits.max_message_size
            if request.size > limit:
                return "size", verdicts.too_big(limit)
            if match.suspended:
                return "reputation", verdicts.suspended(match.customer)
            # Last, so only a message about to get its 250 is counted.
            rate = match.limits.rate_limit
            try:
                decision = await self._rate.count(
                    rate_key(request.session), rate, request.session.queue_id, match.customer
                )
            except RedisError as exc:
                log.error("rate counters unavailable", extra={"queue_id": request.session.queue_id, "error": str(exc)})
                return "rate-store", verdicts.internal_error()
            if decision.held:
                return "reputation", verdicts.held(match.customer, decision.held)
            if not decision.accepted:
                return "rate", verdicts.rate_limited(decision.count, format_duration(rate.per), decision.retry_after)
            return "message", verdicts.accept()

        verdict, match, _ = await self._decide("message", request.session, check)
        if match is None or verdict.action != pb.ACTION_ACCEPT:
            return pb.CheckMessageResponse(verdict=verdict)
        # The keys go with the accept: the ingress signs before it queues.
        return pb.CheckMessageResponse(verdict=verdict, dkim=match.dkim.get(request.from_domain, ()))

    async def ReleaseMessage(
        self, request: pb.ReleaseMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseMessageResponse:
        """The ingress could not queue a message it was told to accept: it was answered 4xx, so it never counted."""
        session = request.session
        try:
            released = await self._rate.release(rate_key(session), session.queue_id)
        except RedisError as exc:
            log.error("rate count not released", extra={"queue_id": session.queue_id, "error": str(exc)})
            await context.abort(grpc.StatusCode.UNAVAILABLE, "rate counters unavailable")
        log.info("rate count released", extra={"queue_id": session.queue_id, "released": released})
        return pb.ReleaseMessageResponse(released=released)

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthenticateResponse:
        started = time.perf_counter()
        response = await authenticate(self._users(), request)
        DECISIONS.labels(check="auth", verdict=_outcome(response.verdict)).inc()
        DECISION_DURATION.labels(stage="auth").observe(time.perf_counter() - started)
        return response

    async def _decide(
        self,
        stage: str,
        session: pb.Session,
        check: Callable[[Match], Awaitable[tuple[str, pb.Verdict]]],
    ) -> tuple[pb.Verdict, Match | None, str]:
        """Every stage first checks the client network (or its SMTP AUTH user), then its own rule.

        Returns the verdict, the customer matched and the rule that decided.
        """
        started = time.perf_counter()
        match = None
        try:
            if session.auth_user:
                match = self._users().lookup(session.auth_user)
            else:
                match = self._index().lookup(session.client_ip)
            if match is None:
                rule, verdict = "network", verdicts.relay_denied(session.client_ip)
            else:
                rule, verdict = await check(match)
        except Exception:
            log.exception("policy check failed", extra={"queue_id": session.queue_id, "stage": stage})
            rule, verdict = "error", verdicts.internal_error()
        outcome = _outcome(verdict)
        _decisions(rule, outcome).inc()
        _duration(stage).observe(time.perf_counter() - started)
        if match is not None:
            self._count_customer(stage, rule, outcome, match)
        level = logging.DEBUG if outcome == "accept" and stage != "message" else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "decision",
                extra={
                    "queue_id": session.queue_id,
                    "stage": stage,
                    "client_ip": session.client_ip,
                    "customer": match.customer if match else "",
                    "rule": rule,
                    "reply": f"{verdict.code} {verdict.enhanced_code} {verdict.text}",
                },
            )
        return verdict, match, rule

    def _reusable(self, rule: str, verdict: pb.Verdict, rules: tuple[str, ...]) -> bool:
        """A domain's verdict, routable or not, is; a temporary failure, a syntax or count refusal is not."""
        return self._reuse_ms > 0 and rule in rules and verdict.action != pb.ACTION_TEMPFAIL

    def _count_customer(self, stage: str, rule: str, outcome: str, match: Match) -> None:
        customer = match.customer if self._customer_label else ""
        if rule == "rate":
            RATE_LIMITED.labels(customer=customer).inc()
        if stage == "message":
            _messages(customer, outcome).inc()
        # The rate limit's script counts the messages it accepts or refuses itself.
        if outcome != "accept" and rule != "rate":
            self._usage.record(match.customer, {"refused": 1})


# Recipient refusals that count as bounces for the reputation breaker (when 5xx).
_BOUNCES = ("recipient-syntax", "recipient-domain")

# Actions as metrics and logs name them: accept, tempfail, reject, disconnect.
_OUTCOMES = {value: name.removeprefix("ACTION_").lower() for name, value in pb.Action.items()}


def _outcome(verdict: pb.Verdict) -> str:
    return _OUTCOMES[verdict.action]


# A labelled child looked up once, not on every call: `labels()` costs several
# microseconds, and the label values are bounded sets (customers only with the
# customer label, and then one series each anyway).
_decisions = lru_cache(maxsize=None)(DECISIONS.labels)
_duration = lru_cache(maxsize=None)(DECISION_DURATION.labels)
_messages = lru_cache(maxsize=4096)(MESSAGES.labels)
