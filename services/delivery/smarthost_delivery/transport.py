"""One SMTP transaction to one destination domain, with per-recipient results."""

import logging
from dataclasses import dataclass

import aiosmtplib

from smarthost_delivery.resolver import MxResolver, PermanentDnsError, TemporaryDnsError
from smarthost_delivery.routing import AddressPolicy

log = logging.getLogger("smarthost.delivery")


@dataclass(frozen=True)
class Outcome:
    """What became of one recipient in one attempt."""

    code: int
    text: str
    remote: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


class DomainTransport:
    def __init__(
        self, resolver: MxResolver, addresses: AddressPolicy, *, port: int, hostname: str, timeout: float
    ) -> None:
        self._resolver = resolver
        self._addresses = addresses
        self._port = port
        self._hostname = hostname
        self._timeout = timeout

    async def deliver(self, domain: str, mail_from: str, recipients: list[str], body: bytes) -> dict[str, Outcome]:
        """Try each MX host and each of its addresses until one gives an answer.

        A 5xx or a complete answer ends the search; connection failures and
        4xx move on to the next address, as RFC 5321 5.1 asks.
        """
        try:
            hosts = await self._resolver.mx_hosts(domain)
        except PermanentDnsError as exc:
            return dict.fromkeys(recipients, Outcome(550, f"5.1.2 {exc}"))
        except TemporaryDnsError as exc:
            return dict.fromkeys(recipients, Outcome(451, f"4.4.3 {exc}"))
        last = Outcome(451, f"4.4.1 no MX host of {domain} could be reached")
        for host in hosts:
            try:
                addresses = await self._resolver.addresses(host.name)
            except TemporaryDnsError as exc:
                last = Outcome(451, f"4.4.3 {exc}")
                continue
            for address in addresses:
                if not self._addresses.permits(address):
                    last = Outcome(451, f"4.4.1 MX {host.name} [{address}] is not a public address; not connecting")
                    continue
                outcomes = await self._attempt(address, host.name, mail_from, recipients, body)
                if all(o.delivered or o.permanent for o in outcomes.values()):
                    return outcomes
                last = next(o for o in outcomes.values() if not (o.delivered or o.permanent))
                if any(o.delivered for o in outcomes.values()):
                    # Some recipients were accepted here: never send those twice.
                    return outcomes
        return dict.fromkeys(recipients, last)

    async def _attempt(
        self, address: str, host: str, mail_from: str, recipients: list[str], body: bytes
    ) -> dict[str, Outcome]:
        remote = f"{host} [{address}]"
        # Opportunistic TLS: STARTTLS when offered, certificates not verified,
        # as for Postfix's `smtp_tls_security_level = may`.
        client = aiosmtplib.SMTP(
            hostname=address,
            port=self._port,
            local_hostname=self._hostname,
            timeout=self._timeout,
            start_tls=None,
            validate_certs=False,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return dict.fromkeys(recipients, Outcome(451, f"4.4.1 connect to {remote} failed: {exc}", remote))
        try:
            return await self._transaction(client, remote, mail_from, recipients, body)
        except aiosmtplib.SMTPResponseException as exc:
            return dict.fromkeys(recipients, Outcome(exc.code, exc.message, remote))
        except (aiosmtplib.SMTPException, OSError) as exc:
            return dict.fromkeys(recipients, Outcome(451, f"4.4.2 {remote}: {exc}", remote))
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()

    @staticmethod
    async def _transaction(
        client: aiosmtplib.SMTP, remote: str, mail_from: str, recipients: list[str], body: bytes
    ) -> dict[str, Outcome]:
        await client.mail(mail_from)
        outcomes: dict[str, Outcome] = {}
        accepted: list[str] = []
        for rcpt in recipients:
            try:
                await client.rcpt(rcpt)
                accepted.append(rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                outcomes[rcpt] = Outcome(exc.code, exc.message, remote)
        if accepted:
            try:
                response = await client.data(body)
                outcome = Outcome(response.code, response.message, remote)
            except aiosmtplib.SMTPResponseException as exc:
                outcome = Outcome(exc.code, exc.message, remote)
            outcomes.update(dict.fromkeys(accepted, outcome))
        return outcomes
