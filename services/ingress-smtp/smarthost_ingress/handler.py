"""The aiosmtpd handler: one policy call per SMTP stage, enqueue, reply.

It decides nothing itself: every accept or refusal is a policy verdict turned
into a reply string. It only enforces that nothing is queued unless every
stage was accepted, that 250 after DATA means the message is stored (record
in Redis, body in Redis or committed in the spool), and that a message no
tier has room for hears 452 4.3.1 as early as its size is known.
"""

import asyncio
import logging
import time

from aiosmtpd.smtp import SMTP
from redis.exceptions import RedisError
from smarthost.policy.v1 import policy_pb2 as pb
from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient

from smarthost_common.best_effort import BestEffort
from smarthost_common.queue import new_queue_id
from smarthost_ingress.metrics import NO_STORAGE
from smarthost_ingress.policy_client import PolicyClient
from smarthost_ingress.protocol import RelayEnvelope, RelaySession
from smarthost_ingress.received import received_header, tls_description
from smarthost_ingress.replies import NO_MEMORY, REDIS_UNAVAILABLE, accepted, printable, reply
from smarthost_ingress.signing import Signer, from_header_domain
from smarthost_ingress.storage import NoStorage, NotReplicated, QueueStorage

log = logging.getLogger("smarthost.ingress")

# How long a rate count that must be taken back is retried (the policy
# service or Redis may be the reason the message could not be queued).
RELEASE_WITHIN = 30.0


class RelayHandler:
    def __init__(self, policy: PolicyClient, storage: QueueStorage, hostname: str) -> None:
        self._policy = policy
        self._storage = storage
        self._releases = BestEffort("rate count release", timeout=RELEASE_WITHIN)
        self._hostname = hostname
        self._signer = Signer()

    async def handle_HELO(self, server: SMTP, session: RelaySession, envelope: RelayEnvelope, hostname: str) -> str:
        session.host_name = printable(hostname)
        await self._connection(session, refresh=True)
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self, server: SMTP, session: RelaySession, envelope: RelayEnvelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = printable(hostname)
        connection = await self._connection(session, refresh=True)
        if accepted(connection.verdict):
            # Advertise the customer's own limit, and enforce it at MAIL and DATA.
            server.data_size_limit = connection.max_message_size
            responses = [
                f"250-SIZE {server.data_size_limit}" if line.startswith("250-SIZE") else line for line in responses
            ]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: RelaySession, envelope: RelayEnvelope, address: str, mail_options: list[str]
    ) -> str:
        connection = await self._connection(session)
        if not accepted(connection.verdict):
            return self._refuse(server, session, "connection", connection.verdict)
        session.queue_id = new_queue_id()
        if not self._storage.has_room(_size(mail_options)):
            return self._no_storage(session, "mail")
        response = await self._policy.check_sender(
            pb.CheckSenderRequest(
                session=self._session(session),
                mail_from=_reverse_path(address),
                declared_size=_size(mail_options),
            )
        )
        if not accepted(response.verdict):
            return self._refuse(server, session, "sender", response.verdict)
        # "" for the null reverse path: the protocol tests for None, not emptiness.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: RelaySession, envelope: RelayEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        response = await self._policy.check_recipient(
            pb.CheckRecipientRequest(
                session=self._session(session),
                mail_from=_reverse_path(envelope.mail_from),
                rcpt_to=address,
                accepted_recipients=len(envelope.rcpt_tos),
            )
        )
        if not accepted(response.verdict):
            return self._refuse(server, session, "recipient", response.verdict)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: RelaySession, envelope: RelayEnvelope) -> str:
        connection = await self._connection(session)
        content = envelope.message
        # Before the policy counts it against the rate limit: a 452 is never counted.
        if not self._storage.has_room(len(content)):
            return self._no_storage(session, "data")
        response = await self._policy.check_message(
            pb.CheckMessageRequest(
                session=self._session(session),
                mail_from=_reverse_path(envelope.mail_from),
                rcpt_to=envelope.rcpt_tos,
                size=len(content),
                from_domain=from_header_domain(content),
            )
        )
        if not accepted(response.verdict):
            return self._refuse(server, session, "message", response.verdict)
        ip = session.client_ip
        record = QueuedMessage(
            queue_id=session.queue_id,
            mail_from=_reverse_path(envelope.mail_from),
            recipients=[Recipient(address=rcpt) for rcpt in envelope.rcpt_tos],
            client_ip=ip,
            helo=session.host_name or "",
            customer=connection.customer,
            received_at_ms=int(time.time() * 1000),
        )
        size = len(content)
        signature, signed_by = await self._signer.sign(session.queue_id, content, response.dkim)
        # In place: a copy of a large message would double its memory. The trace header goes above the signature.
        content[:0] = signature
        content[:0] = received_header(
            helo=session.host_name or "",
            client_ip=ip,
            hostname=self._hostname,
            queue_id=session.queue_id,
            protocol=_protocol(session),
            tls=tls_description(session.ssl),
            recipients=list(envelope.rcpt_tos),
        )
        try:
            tier = await self._storage.store(record, content, size)
        except NoStorage as exc:
            log.warning("no queue tier has room", extra={"queue_id": session.queue_id, "reason": str(exc)})
            self._release(session)
            return self._no_storage(session, "data")
        except (RedisError, OSError, NotReplicated) as exc:
            log.error("enqueue failed", extra={"queue_id": session.queue_id, "error": str(exc)})
            self._release(session)
            return REDIS_UNAVAILABLE
        log.info(
            "queued",
            extra={
                "queue_id": session.queue_id,
                "client_ip": ip,
                "customer": connection.customer,
                "from": record.mail_from,
                "nrcpt": len(record.recipients),
                "size": size,
                "tier": tier,
                "dkim": signed_by,
            },
        )
        return f"250 2.0.0 Ok: queued as {session.queue_id}"

    async def drain(self) -> None:
        """On shutdown: let the rate counts still being taken back finish (each bounded)."""
        await self._releases.drain()

    def _release(self, session: RelaySession) -> None:
        """The message was counted by the rate limit but answered 4xx: take its count back, retrying a while."""
        request = pb.ReleaseMessageRequest(session=self._session(session))

        async def release() -> None:
            pause = 0.5
            while not await self._policy.release_message(request):
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)

        self._releases.run(release)

    async def authenticate(self, server: SMTP, session: RelaySession, username: str, password: str) -> str:
        """SMTP AUTH: the policy names the customer, whose limits then apply to the session."""
        response = await self._policy.authenticate(
            pb.AuthenticateRequest(
                session=pb.Session(client_ip=session.client_ip, helo=session.host_name or ""),
                username=username,
                password=password,
            )
        )
        if not accepted(response.verdict):
            return reply(response.verdict)
        session.authenticated = True
        session.auth_user = username
        session.connection = pb.CheckConnectionResponse(
            verdict=response.verdict, customer=response.customer, max_message_size=response.max_message_size
        )
        server.data_size_limit = response.max_message_size
        log.info("authenticated", extra={"client_ip": session.client_ip, "user": printable(username)})
        return "235 2.7.0 Authentication successful"

    async def _connection(self, session: RelaySession, refresh: bool = False) -> pb.CheckConnectionResponse:
        """The connection verdict, asked once per HELO/EHLO (or at MAIL without one).

        A temporary failure is asked again at the next MAIL: a client that keeps
        its session open (a cached connection) must not be refused for good.
        """
        kept = session.connection
        if kept is not None and not refresh and kept.verdict.action != pb.ACTION_TEMPFAIL:
            return kept
        request = pb.CheckConnectionRequest(
            session=pb.Session(client_ip=session.client_ip, helo=session.host_name or "", auth_user=session.auth_user)
        )
        session.connection = await self._policy.check_connection(request)
        return session.connection

    @staticmethod
    def _session(session: RelaySession) -> pb.Session:
        return pb.Session(
            client_ip=session.client_ip,
            helo=session.host_name or "",
            queue_id=session.queue_id,
            auth_user=session.auth_user,
        )

    @staticmethod
    def _no_storage(session: RelaySession, stage: str) -> str:
        NO_STORAGE.labels(stage=stage).inc()
        log.info("refused", extra={"queue_id": session.queue_id, "stage": stage, "reply": NO_MEMORY})
        return NO_MEMORY

    @staticmethod
    def _refuse(server: SMTP, session: RelaySession, stage: str, verdict: pb.Verdict) -> str:
        """The refusal as the client hears it, logged with the transaction's queue id."""
        if verdict.action == pb.ACTION_DISCONNECT:
            # The protocol closes the session once this reply is written (it may be held for pipelined commands).
            session.disconnect = True
        line = reply(verdict)
        fields = {"queue_id": session.queue_id, "stage": stage, "client_ip": session.client_ip, "reply": line}
        log.info("refused", extra=fields)
        return line


def _size(mail_options: list[str]) -> int:
    for option in mail_options:
        key, _, value = option.partition("=")
        if key.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def _reverse_path(address: str | None) -> str:
    """The sender as the policy and the queue record carry it: "" for <>."""
    return address or ""


def _protocol(session: RelaySession) -> str:
    """RFC 3848: ESMTP, then S for TLS and A for SMTP AUTH."""
    if not session.extended_smtp:
        return "SMTP"
    return "ESMTP" + ("S" if session.ssl else "") + ("A" if session.authenticated else "")
