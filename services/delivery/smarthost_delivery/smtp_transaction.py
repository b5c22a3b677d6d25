"""One SMTP mail transaction (MAIL, RCPT..., DATA) on an open connection."""

from dataclasses import dataclass

from smarthost_delivery.body import BodyUnavailable, MessageBody
from smarthost_delivery.connections import Connection
from smarthost_delivery.smtp_client import Reply, SmtpClient, SmtpError


class StaleConnection(SmtpError):
    """A warm connection failed its RSET: nothing of the message was sent, a new connection may carry it."""


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
    """Outcomes per recipient; raises SmtpError or OSError when the connection breaks.

    With PIPELINING, MAIL and every RCPT go in one write, and DATA with them
    when the body is already in memory; the body is sent only after a 354.
    """
    client, remote = connection.client, connection.remote

    def everyone(code: int, text: str) -> dict[str, Outcome]:
        return dict.fromkeys(envelope.recipients, Outcome(code, text, remote))

    limit = _size_limit(client)
    if limit and body.size > limit:
        return everyone(552, f"5.3.4 message size {body.size} exceeds the limit of {limit} at {remote}")
    options = [f"SIZE={body.size}".encode()] if client.supports("size") else []
    if body.eight_bit and client.supports("8bitmime"):
        options.append(b"BODY=8BITMIME")
    encoding = "ascii"
    if envelope.needs_smtputf8:
        if not client.supports("smtputf8"):
            return everyone(553, f"5.6.7 non-ASCII address, and {remote} does not support SMTPUTF8")
        options.append(b"SMTPUTF8")
        encoding = "utf-8"

    mail = b" ".join([b"MAIL FROM:<" + envelope.mail_from.encode(encoding) + b">", *options])
    rcpts = [b"RCPT TO:<" + rcpt.encode(encoding) + b">" for rcpt in envelope.recipients]
    if client.supports("pipelining"):
        data = body.held
        replies = await _pipeline(connection, [mail, *rcpts, *([b"DATA"] if data is not None else [])])
    else:
        data = None
        replies = [await client.command(mail)]
        if replies[0].code == 250:
            replies += [await client.command(rcpt) for rcpt in rcpts]
    if replies[0].code != 250:
        # A pipelined DATA was refused too (no valid recipient), or its 354 is answered below.
        return await _abandon(client, replies, data, everyone(replies[0].code, replies[0].text))
    outcomes: dict[str, Outcome] = {}
    accepted: list[str] = []
    for rcpt, reply in zip(envelope.recipients, replies[1:], strict=False):
        if reply.code in (250, 251):
            accepted.append(rcpt)
        else:
            outcomes[rcpt] = Outcome(reply.code, reply.text, remote)
    if not accepted:
        return await _abandon(client, replies, data, outcomes)
    if data is None:
        try:
            data = await body.read()
        except BodyUnavailable as exc:
            await _reset(client)
            outcomes.update(dict.fromkeys(accepted, Outcome(451, f"4.3.0 message body not readable now: {exc}")))
            return outcomes
        start = await client.command(b"DATA")
    else:
        start = replies[-1]
    if start.code != 354:
        await _reset(client)
        reply = start
    else:
        reply = await client.send_data(data)
        if reply.code != 250:
            await _reset(client)
    outcomes.update(dict.fromkeys(accepted, Outcome(reply.code, reply.text, remote)))
    return outcomes


async def _pipeline(connection: Connection, commands: list[bytes]) -> list[Reply]:
    """The commands in one write, after the RSET of a connection taken warm from the pool."""
    client = connection.client
    if not connection.unchecked:
        return await client.pipeline(commands)
    connection.unchecked = False
    answered = client.replies_read
    try:
        rset, *replies = await client.pipeline([b"RSET", *commands])
    except SmtpError as exc:
        if client.replies_read == answered:
            raise StaleConnection(str(exc)) from exc
        raise
    if rset.code != 250:
        raise StaleConnection(f"RSET answered {rset.code} {rset.text}")
    return replies


async def _abandon(
    client: SmtpClient, replies: list[Reply], data: bytes | None, outcomes: dict[str, Outcome]
) -> dict[str, Outcome]:
    """End a transaction that delivers to nobody, so the connection can carry the next one.

    A server that answered a pipelined DATA with 354 anyway (RFC 2920 says it
    must not, without a recipient) gets an empty message it delivers to nobody.
    """
    if data is not None and replies[-1].code == 354:
        await client.send_data(b"")
    await _reset(client)
    return outcomes


def _size_limit(client: SmtpClient) -> int:
    value = client.extensions.get("size", "").strip()
    return int(value) if value.isdigit() else 0


async def _reset(client: SmtpClient) -> None:
    """End a transaction that did not reach DATA, so the connection can carry the next one."""
    if client.is_connected:
        try:
            reply = await client.command(b"RSET")
        except (SmtpError, OSError):
            client.close()
            return
        if reply.code != 250:
            client.close()
