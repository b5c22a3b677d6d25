"""Delivery of one message to one destination domain, with a result per recipient."""

import logging
from dataclasses import dataclass

from smarthost_delivery.body import MessageBody
from smarthost_delivery.connections import (
    Connection,
    ConnectionPool,
    ConnectSettings,
    SessionRefused,
    open_connection,
)
from smarthost_delivery.down import DownDestinations
from smarthost_delivery.limiter import DestinationBusy, DestinationLimiter
from smarthost_delivery.resolver import MxResolver, PermanentDnsError, TemporaryDnsError
from smarthost_delivery.routing import AddressPolicy
from smarthost_delivery.smtp_client import SmtpError
from smarthost_delivery.smtp_transaction import Envelope, Outcome, StaleConnection, send

log = logging.getLogger("smarthost.delivery")


@dataclass(frozen=True)
class Destination:
    domain: str
    recipients: list[str]


class DomainTransport:
    def __init__(
        self,
        resolver: MxResolver,
        addresses: AddressPolicy,
        pool: ConnectionPool,
        limiter: DestinationLimiter,
        connect: ConnectSettings,
        down: DownDestinations,
    ) -> None:
        self._resolver = resolver
        self._addresses = addresses
        self._pool = pool
        self._limiter = limiter
        self._connect = connect
        self._down = down

    async def deliver(self, destination: Destination, mail_from: str, body: MessageBody) -> dict[str, Outcome]:
        """One transaction per reachable MX until every recipient has a final answer or none is left to try."""
        domain = destination.domain
        if await self._down.is_down(domain):
            held = Outcome(451, f"4.4.1 no MX host of {domain} took a connection a moment ago; will retry")
            return dict.fromkeys(destination.recipients, held)
        try:
            async with self._limiter.slot(domain):
                outcomes, reached = await self._deliver(destination, mail_from, body)
        except DestinationBusy:
            busy = Outcome(451, f"4.4.5 too many concurrent deliveries to {domain}; will retry")
            return dict.fromkeys(destination.recipients, busy)
        if reached:
            await self._down.reached(domain)
        else:
            await self._down.failed(domain)
        return outcomes

    async def _deliver(
        self, destination: Destination, mail_from: str, body: MessageBody
    ) -> tuple[dict[str, Outcome], bool]:
        """MX hosts in preference order, each address in turn (RFC 5321 5.1).

        2xx and 5xx answers are final; recipients still without one (4xx,
        connection failure, timeout) move on to the next address or MX.
        Also says whether the destination was reached: False when there were
        addresses to try and not one took a connection.
        """
        domain = destination.domain
        try:
            hosts = await self._resolver.mx_hosts(domain)
        except PermanentDnsError as exc:
            return dict.fromkeys(destination.recipients, Outcome(exc.code, exc.text)), True
        except TemporaryDnsError as exc:
            return dict.fromkeys(destination.recipients, Outcome(451, f"4.4.3 {exc}")), True
        reached = False
        final: dict[str, Outcome] = {}
        pending = list(destination.recipients)
        last = dict.fromkeys(pending, Outcome(451, f"4.4.1 no MX host of {domain} could be reached"))
        for host in hosts:
            try:
                addresses = await self._resolver.addresses(host.name)
            except TemporaryDnsError as exc:
                last.update(dict.fromkeys(pending, Outcome(451, f"4.4.3 {exc}")))
                continue
            if not addresses:
                last.update(dict.fromkeys(pending, Outcome(451, f"4.4.3 MX host {host.name} has no address")))
            for address in addresses:
                if not self._addresses.permits(address):
                    refused = Outcome(451, f"4.4.1 MX {host.name} [{address}] is not a public address; not connecting")
                    last.update(dict.fromkeys(pending, refused))
                    continue
                outcomes, connected = await self._attempt(address, host.name, Envelope(mail_from, pending), body)
                reached = reached or connected
                for rcpt, outcome in outcomes.items():
                    (final if outcome.delivered or outcome.permanent else last)[rcpt] = outcome
                pending = [rcpt for rcpt in pending if rcpt not in final]
                if not pending:
                    return final, True
        # Nothing to connect to (no address, or none allowed) is not a dead destination.
        tried = any(outcome.remote for outcome in last.values())
        return {**final, **{rcpt: last[rcpt] for rcpt in pending}}, reached or not tried

    async def _attempt(
        self, address: str, host: str, envelope: Envelope, body: MessageBody
    ) -> tuple[dict[str, Outcome], bool]:
        """The outcomes, and whether the MX took the connection."""
        remote = f"{host} [{address}]"
        connection = await self._pool.take(address)
        if connection is not None:
            try:
                return await self._send(address, connection, envelope, body)
            except StaleConnection:
                # The peer let the idle connection go; nothing was sent on it.
                log.debug("warm connection gone; opening a new one", extra={"remote": remote})
        try:
            connection = await open_connection(self._connect, address, host)
        except SessionRefused as exc:
            return dict.fromkeys(envelope.recipients, Outcome(exc.code, exc.text, remote)), True
        except (SmtpError, OSError) as exc:
            failure = Outcome(451, f"4.4.1 connect to {remote} failed: {_reason(exc)}", remote)
            return dict.fromkeys(envelope.recipients, failure), False
        return await self._send(address, connection, envelope, body)

    async def _send(
        self, address: str, connection: Connection, envelope: Envelope, body: MessageBody
    ) -> tuple[dict[str, Outcome], bool]:
        """Raises StaleConnection when a warm connection turns out to be gone."""
        try:
            outcomes = await send(connection, envelope, body)
        except StaleConnection:
            connection.close()
            raise
        except (SmtpError, OSError) as exc:
            connection.close()
            failure = Outcome(
                451, f"4.4.2 conversation with {connection.remote} failed: {_reason(exc)}", connection.remote
            )
            return dict.fromkeys(envelope.recipients, failure), True
        await self._pool.give_back(address, connection)
        return outcomes, True


def _reason(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__
