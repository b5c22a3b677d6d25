"""Delivery of one message to one destination domain, with a result per recipient."""

import logging
from dataclasses import dataclass

import aiosmtplib

from smarthost_delivery.body import MessageBody
from smarthost_delivery.connections import (
    ConnectionPool,
    ConnectSettings,
    SessionRefused,
    open_connection,
)
from smarthost_delivery.limiter import DestinationBusy, DestinationLimiter
from smarthost_delivery.resolver import MxResolver, PermanentDnsError, TemporaryDnsError
from smarthost_delivery.routing import AddressPolicy
from smarthost_delivery.smtp_transaction import Envelope, Outcome, send

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
    ) -> None:
        self._resolver = resolver
        self._addresses = addresses
        self._pool = pool
        self._limiter = limiter
        self._connect = connect

    async def deliver(self, destination: Destination, mail_from: str, body: MessageBody) -> dict[str, Outcome]:
        """One transaction per reachable MX until every recipient has a final answer or none is left to try."""
        try:
            async with self._limiter.slot(destination.domain):
                return await self._deliver(destination, mail_from, body)
        except DestinationBusy:
            busy = Outcome(451, f"4.4.5 too many concurrent deliveries to {destination.domain}; will retry")
            return dict.fromkeys(destination.recipients, busy)

    async def _deliver(self, destination: Destination, mail_from: str, body: MessageBody) -> dict[str, Outcome]:
        """MX hosts in preference order, each address in turn (RFC 5321 5.1).

        2xx and 5xx answers are final; recipients still without one (4xx,
        connection failure, timeout) move on to the next address or MX.
        """
        domain = destination.domain
        try:
            hosts = await self._resolver.mx_hosts(domain)
        except PermanentDnsError as exc:
            return dict.fromkeys(destination.recipients, Outcome(exc.code, exc.text))
        except TemporaryDnsError as exc:
            return dict.fromkeys(destination.recipients, Outcome(451, f"4.4.3 {exc}"))
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
                outcomes = await self._attempt(address, host.name, Envelope(mail_from, pending), body)
                for rcpt, outcome in outcomes.items():
                    (final if outcome.delivered or outcome.permanent else last)[rcpt] = outcome
                pending = [rcpt for rcpt in pending if rcpt not in final]
                if not pending:
                    return final
        return {**final, **{rcpt: last[rcpt] for rcpt in pending}}

    async def _attempt(self, address: str, host: str, envelope: Envelope, body: MessageBody) -> dict[str, Outcome]:
        remote = f"{host} [{address}]"
        connection = await self._pool.take(address)
        if connection is None:
            try:
                connection = await open_connection(self._connect, address, host)
            except SessionRefused as exc:
                return dict.fromkeys(envelope.recipients, Outcome(exc.code, exc.text, remote))
            except (aiosmtplib.SMTPException, OSError) as exc:
                failure = Outcome(451, f"4.4.1 connect to {remote} failed: {_reason(exc)}", remote)
                return dict.fromkeys(envelope.recipients, failure)
        try:
            outcomes = await send(connection, envelope, body)
        except (aiosmtplib.SMTPException, OSError) as exc:
            connection.close()
            failure = Outcome(451, f"4.4.2 conversation with {remote} failed: {_reason(exc)}", remote)
            return dict.fromkeys(envelope.recipients, failure)
        await self._pool.give_back(address, connection)
        return outcomes


def _reason(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__
