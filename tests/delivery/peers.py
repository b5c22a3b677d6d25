"""SMTP peers the shared sinks do not cover: a stalling MX, a TLS MX, and a raw wire recorder."""

import asyncio
import io
import socketserver
import ssl
import threading
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from support.sinks import SinkHandler


class StallingHandler(SinkHandler):
    """Holds the first DATA for `stall` seconds, as a hung MX would, then answers `answer` (None: accept)."""

    def __init__(self, stall: float, answer: str | None = None) -> None:
        super().__init__()
        self.stall = stall
        self.answer = answer
        self.stalled = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.stalled.is_set():
            self.stalled.set()
            await asyncio.sleep(self.stall)
            if self.answer:
                return self.answer
        return await super().handle_DATA(server, session, envelope)


class ConcurrencyRecordingHandler(SinkHandler):
    """Holds each DATA for `hold` seconds and remembers the most transactions it had at once."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.in_flight = 0
        self.most_at_once = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # One event loop serves every session, so these updates do not race.
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            await asyncio.sleep(self.hold)
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.in_flight -= 1


class TlsRecordingHandler(SinkHandler):
    """Remembers, per message, whether it arrived over TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.over_tls: list[bool] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.over_tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


class Peer:
    """An aiosmtpd server on `host:port` with the given handler."""

    def __init__(self, handler: SinkHandler, host: str, port: int, **smtp: Any) -> None:
        self.handler = handler
        self._controller = Controller(handler, hostname=host, port=port, server_hostname=f"peer-{host}", **smtp)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def untrusted_tls_context(name: str) -> ssl.SSLContext:
    """A server certificate from a throwaway CA the relay does not know, as on most MX hosts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert(name).configure_cert(context)
    return context


def read_data(rfile: io.BufferedIOBase) -> bytes | None:
    """The bytes after a 354 up to and with the end mark, as sent; None when the client went away."""
    raw = b""
    while not raw.endswith(b"\r\n.\r\n"):
        chunk = rfile.readline(100000)
        if not chunk:
            return None
        raw += chunk
    return raw


class RawServer:
    """An SMTP peer written by hand on socketserver, for what aiosmtpd would hide: bytes and batches as sent."""

    def _serve(self, host: str, port: int, handler: type[socketserver.StreamRequestHandler]) -> None:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((host, port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class WireRecorder(RawServer):
    """A minimal SMTP server that keeps the exact bytes sent after DATA, before any unstuffing.

    It also counts connections, so a test can prove the relay never connected.
    """

    def __init__(self, host: str, port: int) -> None:
        self.connections = 0
        self.data: list[bytes] = []
        recorder = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                recorder.connections += 1
                self.request.settimeout(30)
                self.wfile.write(b"220 wire ESMTP\r\n")
                while line := self.rfile.readline(1000):
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        self.wfile.write(b"250-wire\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go ahead\r\n")
                        raw = read_data(self.rfile)
                        if raw is None:
                            return
                        recorder.data.append(raw)
                        self.wfile.write(b"250 2.0.0 recorded\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        self._serve(host, port, Handler)


class PipeliningRecorder(RawServer):
    """An SMTP server that offers PIPELINING and answers nothing of an envelope until its DATA has arrived.

    A client that waits for each reply before its next command never gets
    one: only a pipelining client delivers here. Each envelope's command
    lines are kept (`batches`), with the message bytes (`data`).
    `drop_reused`: the first connection is closed, unanswered, when its
    second envelope arrives (a peer that let a warm connection go).
    Recipients `nobody@...` are refused with 550.
    """

    def __init__(self, host: str, port: int, drop_reused: bool = False) -> None:
        self.connections = 0
        self.batches: list[list[bytes]] = []
        self.data: list[bytes] = []
        recorder = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                recorder.connections += 1
                number = recorder.connections
                envelopes = 0
                self.request.settimeout(30)
                self.wfile.write(b"220 pipe ESMTP\r\n")
                batch: list[bytes] = []
                refused = False
                while line := self.rfile.readline(1000):
                    verb = line[:4].upper()
                    if verb == b"RSET" and refused and not batch:
                        # The client ends the refused envelope before anything else.
                        refused = False
                        self.wfile.write(b"250 ok\r\n")
                    elif verb == b"EHLO":
                        self.wfile.write(b"250-pipe\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    elif verb != b"DATA":
                        batch.append(line.rstrip(b"\r\n"))
                    else:
                        batch.append(b"DATA")
                        envelopes += 1
                        if drop_reused and number == 1 and envelopes == 2:
                            return
                        recorder.batches.append(batch)
                        replies = [b"550 5.1.1 no such user" if b"<nobody@" in cmd else b"250 ok" for cmd in batch[:-1]]
                        accepted = any(cmd.startswith(b"RCPT") and b"<nobody@" not in cmd for cmd in batch)
                        replies.append(b"354 go ahead" if accepted else b"554 5.5.1 no valid recipients")
                        self.wfile.write(b"".join(reply + b"\r\n" for reply in replies))
                        batch = []
                        if not accepted:
                            refused = True
                            continue
                        raw = read_data(self.rfile)
                        if raw is None:
                            return
                        recorder.data.append(raw)
                        self.wfile.write(b"250 2.0.0 recorded\r\n")

        self._serve(host, port, Handler)
