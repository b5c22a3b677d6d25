"""A raw SMTP client: sends bytes exactly as given, reads replies exactly as sent.

smtplib normalizes what it sends; smuggling and malformed-input tests need
the bytes on the wire to be the test's own.
"""

import re
import socket
import ssl
from dataclasses import dataclass

# A reply line: code, separator, printable ASCII text, CRLF. Nothing else.
REPLY_LINE = re.compile(rb"[2-5][0-9][0-9](?:[ -][\x20-\x7e]*)?\r\n")


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[bytes, ...]

    @property
    def text(self) -> bytes:
        return self.lines[-1][4:].rstrip(b"\r\n")

    @property
    def enhanced(self) -> bytes:
        return self.text.split(b" ", 1)[0]


class Wire:
    def __init__(self, host: str, port: int, source: str | None = None, timeout: float = 20.0) -> None:
        self.sock: socket.socket = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self._buffer = b""

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unread: {self._buffer!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def reply(self) -> Reply:
        """One whole reply; every line of it must be valid SMTP."""
        lines: list[bytes] = []
        while True:
            line = self.line()
            assert REPLY_LINE.fullmatch(line), f"not a valid SMTP reply line: {line!r}"
            lines.append(line)
            if line[3:4] != b"-":
                return Reply(int(line[:3]), tuple(lines))

    def command(self, line: str | bytes) -> Reply:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def greeting(self) -> Reply:
        reply = self.reply()
        assert reply.code == 220, reply
        return reply

    def closed(self) -> bool:
        """True once the server has closed the connection (after any unread replies)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self._buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        assert not self._buffer, f"unread bytes before TLS: {self._buffer!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
