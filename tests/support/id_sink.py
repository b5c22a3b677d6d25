"""A destination MX as its own process that writes down the test id of every message it accepts.

`python id_sink.py HOST PORT FILE`: one line per accepted message (the value
of its `X-Test-Id:` header and the Unix time it arrived) appended to FILE,
flushed at once, so a test that sends thousands of large messages keeps none
of them in its own memory.
SIGTERM stops it.
"""

import asyncio
import re
import signal
import sys
import time

from aiosmtpd.smtp import SMTP, Envelope, Session

TEST_ID = re.compile(rb"^X-Test-Id: (\S+)\r?$", re.MULTILINE)


class IdHandler:
    def __init__(self, path: str) -> None:
        self._out = open(path, "ab", buffering=0)  # noqa: SIM115 - open for the process's life

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        found = TEST_ID.search(content.partition(b"\r\n\r\n")[0])
        self._out.write(b"%s %.3f\n" % (found.group(1) if found else b"-", time.time()))
        return "250 2.0.0 Ok"


async def main(host: str, port: int, path: str) -> None:
    handler = IdHandler(path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname=f"sink-{host}", data_size_limit=None), host, port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
