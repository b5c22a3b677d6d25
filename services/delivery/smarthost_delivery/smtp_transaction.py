"""One SMTP mail transaction (MAIL, RCPT..., DATA) on an open connection."""

from dataclasses import dataclass

import aiosmtplib

from smarthost_delivery.body import BodyUnavailable, MessageBody
from smarthost_delivery.connections import Connection


@dataclass(frozen=True)
class Outcome:
    """What became of one recipient in one attempt."""

    code: int
    text: str
    # The MX that answered, `name [address]`; empty when the relay decided alone.
    remote: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: list[str]

    @property
    def needs_smtputf8(self) -> bool:
        return not (self.mail_from.isascii() and all(rcpt.isascii() for rcpt in self.recipients))


async def send(connection: Connection, envelope: Envelope, body: MessageBody) -> dict[str, Outcome]:
    """Outcomes per recipient; raises aiosmtplib.SMTPException or OSError when the connection breaks.

    The body goes through aiosmtplib's DATA, which turns every bare CR and
    bare LF into CRLF and dot-stuffs lines: no next hop can be made to see
    an end of data that is not ours (SMTP smuggling).
    """
    client, remote = connection.client, connection.remote

    def everyone(code: int, text: str) -> dict[str, Outcome]:
        return dict.fromkeys(envelope.recipients, Outcome(code, text, remote))

    limit = _size_limit(client)
    if limit and body.size > limit:
        return everyone(552, f"5.3.4 message size {body.size} exceeds the limit of {limit} at {remote}")
    options = [f"SIZE={body.size}".encode()] if client.supports_extension("size") else []
    if body.eight_bit and client.supports_extension("8bitmime"):
        options.append(b"BODY=8BITMIME")
    encoding = "ascii"
    if envelope.needs_smtputf8:
        if not client.supports_extension("smtputf8"):
            return everyone(553, f"5.6.7 non-ASCII address, and {remote} does not support SMTPUTF8")
        options.append(b"SMTPUTF8")
        encoding = "utf-8"

    reply = await client.execute_command(b"MAIL", b"FROM:<" + envelope.mail_from.encode(encoding) + b">", *options)
    if reply.code != 250:
        await _reset(client)
        return everyone(reply.code, reply.message)
    outcomes: dict[str, Outcome] = {}
    accepted: list[str] = []
    for rcpt in envelope.recipients:
        reply = await client.execute_command(b"RCPT", b"TO:<" + rcpt.encode(encoding) + b">")
        if reply.code in (250, 251):
            accepted.append(rcpt)
        else:
            outcomes[rcpt] = Outcome(reply.code, reply.message, remote)
    if not accepted:
        await _reset(client)
        return outcomes
    try:
        data = await body.read()
    except BodyUnavailable as exc:
        await _reset(client)
        outcomes.update(dict.fromkeys(accepted, Outcome(451, f"4.3.0 message body not readable now: {exc}")))
        return outcomes
    try:
        reply = await client.data(data)
    except aiosmtplib.SMTPDataError as exc:
        await _reset(client)
        reply = aiosmtplib.SMTPResponse(exc.code, exc.message)
    outcomes.update(dict.fromkeys(accepted, Outcome(reply.code, reply.message, remote)))
    return outcomes


def _size_limit(client: aiosmtplib.SMTP) -> int:
    value = client.esmtp_extensions.get("size", "").strip()
    return int(value) if value.isdigit() else 0


async def _reset(client: aiosmtplib.SMTP) -> None:
    """End a transaction that did not reach DATA, so the connection can carry the next one."""
    if client.is_connected:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
