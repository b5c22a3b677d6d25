"""Destination MX hosts: real SMTP servers on 127.0.0.x that record what arrives.

A sink answers 250 unless the test gives it a `reply` function, which can
refuse a recipient or the DATA (e.g. 451 twice, then accept).
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


# (stage, argument) -> reply line, or None for the default 250.
Reply = Callable[[str, str], str | None]


class SinkHandler:
    def __init__(self, reply: Reply | None = None) -> None:
        self.messages: list[Received] = []
        self.transactions = 0
        self.reply = reply
        self._lock = threading.Lock()
        self.arrived = threading.Event()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        answer = self.reply("RCPT", address) if self.reply else None
        if answer is None:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Ok"
        return answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = self.reply("DATA", envelope.mail_from or "") if self.reply else None
        with self._lock:
            self.transactions += 1
            if answer is None:
                self.messages.append(
                    Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), envelope.original_content or b"")
                )
                self.arrived.set()
        return answer or "250 2.0.0 Ok"


class SmtpSink:
    def __init__(self, host: str, port: int, reply: Reply | None = None) -> None:
        self.host = host
        self.port = port
        self.handler = SinkHandler(reply)
        self._controller = Controller(self.handler, hostname=host, port=port, server_hostname=f"sink-{host}")
        self._controller.start()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def stop(self) -> None:
        self._controller.stop()
