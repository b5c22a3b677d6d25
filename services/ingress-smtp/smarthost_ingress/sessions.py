"""The SMTP sessions currently connected, so SIGTERM can drain them."""

import asyncio
import contextlib
from typing import Protocol


class Drainable(Protocol):
    def close_if_idle(self) -> None:
        """421 and close now, unless a mail transaction is in progress."""

    def abort(self) -> None:
        """421 and close now, whatever the session is doing."""


class Sessions:
    def __init__(self) -> None:
        self.active: set[Drainable] = set()
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, session: Drainable) -> None:
        self.active.add(session)
        self._idle.clear()

    def discard(self, session: Drainable) -> None:
        self.active.discard(session)
        if not self.active:
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Sessions between transactions close now; the others get `grace` seconds to finish theirs.

        A session still receiving DATA when the time is up is closed with
        421: the client keeps the message and retries, nothing of it is queued.
        """
        self.draining = True
        for session in list(self.active):
            session.close_if_idle()
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            for session in list(self.active):
                session.abort()
            # Let the closed transports call connection_lost before the loop stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._idle.wait()
