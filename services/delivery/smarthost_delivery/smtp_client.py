"""A lean SMTP client on an asyncio protocol: replies are parsed as they arrive, so commands can be pipelined.

A delivery costs round trips more than anything: with a server that offers
PIPELINING (RFC 2920) a transaction's MAIL, RCPT and DATA go in one write
and their replies come back together. Every wait for a reply is bounded by
the command timeout; a timeout, a disconnect or a reply that is not SMTP is
an SmtpError, after which the connection is closed and never used again.
"""

import asyncio
import re
import ssl
from collections import deque
from dataclasses import dataclass

from smarthost_common.line_ends import crlf_only

# One reply, continuation lines included, as aiosmtplib bounds it: a few KB in practice.
MAX_REPLY = 32 * 1024
# CR, LF and NUL end or corrupt a command line: never sent inside one.
_CONTROL = re.compile(rb"[\x00\r\n]")
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")


class SmtpError(Exception):
    """The conversation broke: the connection is closed, timed out, or the peer does not speak SMTP."""


@dataclass(frozen=True)
class Reply:
    code: int
    # Continuation lines joined by newlines, as aiosmtplib gave them.
    text: str


def data_payload(message: bytes) -> bytes:
    """The message as DATA sends it: every bare CR and bare LF made CRLF, lines dot-stuffed, then the end mark.

    No next hop can be made to see an end of data that is not ours (SMTP smuggling).
    Most mail needs neither change: a check in one C pass is much cheaper than a
    substitution over every line, so each is made only when needed.
    """
    if not crlf_only(message):
        message = _LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    # Every line now starts at the start or after a LF: plain replaces, far cheaper than a regex.
    stuffed = message.replace(b"\n.", b"\n..")
    return (b"." if stuffed.startswith(b".") else b"") + stuffed + b".\r\n"


class _ReplyReader(asyncio.Protocol):
    """Turns the bytes received into replies, queued until read; the first failure is kept and raised."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.error: SmtpError | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._line(line)
        if len(self._buffer) + sum(map(len, self._lines)) > MAX_REPLY:
            self._fail(SmtpError("reply too long"))
        self._wake()

    def _line(self, line: bytes) -> None:
        code, separator = line[:3], line[3:4]
        if not code.isdigit() or separator not in (b" ", b"-", b"\r", b"\n"):
            self._fail(SmtpError(f"malformed SMTP reply: {line[:100]!r}"))
            return
        self._lines.append(line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape"))
        if separator != b"-":
            self._replies.append(Reply(int(code), "\n".join(self._lines)))
            self._lines = []

    def eof_received(self) -> bool:
        self._fail(SmtpError("connection closed by the server"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        failure = SmtpError(f"connection lost: {exc}" if exc else "connection closed")
        failure.__cause__ = exc
        self._fail(failure)

    def discard_pending(self) -> None:
        """Forget what arrived unasked (before TLS starts: nothing sent in clear may count after it)."""
        self._buffer.clear()
        self._lines = []
        self._replies.clear()

    def _fail(self, exc: SmtpError) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def reply(self, within: float) -> Reply:
        while not self._replies:
            if self.error is not None:
                raise self.error
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A plain timer on the waiter: asyncio.timeout costs several times more, for every reply.
            timer = loop.call_later(within, _expire, waiter, within)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._replies.popleft()


def _expire(waiter: "asyncio.Future[None]", within: float) -> None:
    if not waiter.done():
        waiter.set_exception(SmtpError(f"no reply within {within:g}s"))


class SmtpClient:
    def __init__(self, transport: asyncio.Transport, reader: _ReplyReader, reply_within: float) -> None:
        self._transport = transport
        self._reader = reader
        self._timeout = reply_within
        # EHLO keywords, lowercased, with their parameters ('' when none).
        self.extensions: dict[str, str] = {}
        # Replies read so far: whether a failed exchange got any answer at all.
        self.replies_read = 0

    @classmethod
    async def connect(
        cls, host: str, port: int, connect_within: float, reply_within: float
    ) -> "tuple[SmtpClient, Reply]":
        """Connect and read the greeting, each within `connect_within`; `reply_within` bounds every later reply."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_within):
                transport, reader = await loop.create_connection(_ReplyReader, host, port)
        except TimeoutError:
            raise SmtpError(f"no connection within {connect_within:g}s") from None
        client = cls(transport, reader, reply_within)
        try:
            greeting = await reader.reply(connect_within)
        except SmtpError:
            client.close()
            raise
        return client, greeting

    @property
    def is_connected(self) -> bool:
        return self._reader.error is None and not self._transport.is_closing()

    def supports(self, extension: str) -> bool:
        return extension in self.extensions

    async def command(self, line: bytes) -> Reply:
        (reply,) = await self.pipeline([line])
        return reply

    async def pipeline(self, lines: list[bytes]) -> list[Reply]:
        """Send the commands in one write and read their replies, in order."""
        for line in lines:
            if _CONTROL.search(line):
                raise ValueError("an SMTP command may not hold CR, LF or NUL")
        self._write(b"\r\n".join(lines) + b"\r\n")
        return [await self._reply() for _ in lines]

    async def send_data(self, message: bytes) -> Reply:
        """The message after a 354, and the server's verdict on it."""
        self._write(data_payload(message))
        return await self._reply()

    async def ehlo(self, hostname: str) -> Reply:
        reply = await self.command(b"EHLO " + hostname.encode())
        if reply.code == 250:
            self.extensions = {}
            for line in reply.text.split("\n")[1:]:
                keyword, _, parameters = line.partition(" ")
                self.extensions[keyword.lower()] = parameters.strip()
        return reply

    async def helo(self, hostname: str) -> Reply:
        reply = await self.command(b"HELO " + hostname.encode())
        if reply.code == 250:
            self.extensions = {}
        return reply

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> Reply:
        """STARTTLS and the handshake; the caller says EHLO again. A reply other than 220 is returned as is."""
        reply = await self.command(b"STARTTLS")
        if reply.code != 220:
            return reply
        self._reader.discard_pending()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            upgraded = await loop.start_tls(self._transport, self._reader, context, server_hostname=server_hostname)
        if upgraded is None:
            raise SmtpError("TLS handshake ended without a connection")
        self._transport = upgraded
        self.extensions = {}
        return reply

    async def quit(self) -> None:
        """QUIT politely; the connection is closed whatever the answer."""
        try:
            await self.command(b"QUIT")
        except (SmtpError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._transport.close()

    def _write(self, data: bytes) -> None:
        if self._reader.error is not None:
            raise self._reader.error
        if self._transport.is_closing():
            raise SmtpError("connection closed")
        self._transport.write(data)

    async def _reply(self) -> Reply:
        try:
            reply = await self._reader.reply(self._timeout)
        except SmtpError:
            # Replies may now pair with the wrong commands: this connection is done.
            self.close()
            raise
        self.replies_read += 1
        return reply
