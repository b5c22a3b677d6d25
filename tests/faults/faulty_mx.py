"""A destination MX whose behaviour the fault suite switches: answer, stall, answer 4xx, or drop the connection."""

import asyncio
import re
import threading
from collections import Counter

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

TEST_ID = re.compile(rb"^X-Test-Id: (\S+)\r?$", re.MULTILINE)


class FaultyHandler:
    def __init__(self) -> None:
        self.mode = "ok"
        self.arrived: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mode = self.mode
        if mode == "stall":
            await asyncio.sleep(8)
        elif mode == "tempfail":
            return "451 4.3.0 try again later"
        elif mode == "drop":
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "421 4.3.0 gone"
        found = TEST_ID.search((envelope.original_content or b"").partition(b"\r\n\r\n")[0])
        with self._lock:
            self.arrived[found.group(1).decode() if found else "-"] += 1
        return "250 2.0.0 Ok"


class FaultyMx:
    def __init__(self, host: str, port: int) -> None:
        self.handler = FaultyHandler()
        self._controller = Controller(self.handler, hostname=host, port=port, server_hostname=f"mx-{host}")
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
