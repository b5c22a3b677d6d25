"""RFC 2920 command pipelining: what a client must wait for, and how unread input is seen.

A client may send MAIL, RCPT and DATA without waiting for their replies, but
must wait for the greeting, for the reply to a command that changes the
session (EHLO, HELO, STARTTLS, AUTH, QUIT), and for the 354 before message
content. Spam bots and smuggling attempts are what does otherwise; as
Postfix 3.9 does by default (`smtpd_forbid_unauth_pipelining`), such a client
is told why and disconnected.
"""

import asyncio
import fcntl
import struct
import termios

# Commands that end a pipelined group: nothing may follow them before their reply.
END_OF_GROUP = frozenset({"EHLO", "HELO", "STARTTLS", "AUTH", "QUIT", "DATA"})

_INT = struct.Struct("i")


def refusal(after: str) -> str:
    """The reply to a client that did not wait; `after` is `connect` or a command."""
    awaited = "the greeting" if after == "connect" else f"the reply to {after.upper()}"
    return f"554 5.5.0 Error: SMTP protocol synchronization, input sent before {awaited}"


def buffered(reader: asyncio.StreamReader) -> bytearray:
    """What the client sent that the session has not read yet (StreamReader keeps it private)."""
    buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
    return buffer


def command_buffered(reader: asyncio.StreamReader) -> bool:
    """True while a whole command line waits in the buffer: replies can then be held for it."""
    buffer = buffered(reader)
    return bool(buffer) and b"\n" in buffer


def unread_in_kernel(fd: int) -> int:
    """Bytes the kernel holds for the socket that the event loop has not read yet (FIONREAD)."""
    try:
        count: int = _INT.unpack(fcntl.ioctl(fd, termios.FIONREAD, _INT.pack(0)))[0]
    except OSError:
        return 0
    return count
