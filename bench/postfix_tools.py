"""Postfix's test programs as the benchmark's load and destinations: smtp-source and smtp-sink.

Both are small C programs, so neither competes much with the relay being
measured for the two cores. Each destination MX is one smtp-sink that dumps
every message to its own file (`-d`) on a tmpfs: the number of files is the
number of messages arrived, a file's modification time is when its message
arrived, and a latency probe's `X-Test-Id` header is in its file.
"""

import os
import shutil
import subprocess
from pathlib import Path

from support.ports import wait_for_port
from support.processes import Process, ProcessGroup

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
TEST_ID = b"\nX-Test-Id: "


class Sinks:
    """One smtp-sink per MX host, all on `port`, `wait` seconds before answering DATA."""

    def __init__(self, group: ProcessGroup, dumps: Path, hosts: list[str], port: int, wait: int) -> None:
        self._dumps = dumps
        self._processes: list[Process] = []
        for host in hosts:
            (dumps / host).mkdir()
            (dumps / host).chmod(0o777)
            # smtp-sink refuses to run as root: it listens, then becomes `nobody`.
            argv = [SMTP_SINK, "-u", "nobody", "-d", f"{dumps}/{host}/m.", *(["-w", str(wait)] if wait else [])]
            # A backlog as deep as smtp-sink's own connection limit.
            self._processes.append(group.start(f"smtp-sink-{host}-w{wait}", [*argv, f"{host}:{port}", "256"]))
            wait_for_port(host, port)
        # wait_for_port's probe connections are sessions, not messages; they leave no file.

    def arrived(self) -> int:
        return sum(len(os.listdir(folder)) for folder in self._folders())

    def last_arrival(self) -> float:
        return max((entry.stat().st_mtime for folder in self._folders() for entry in os.scandir(folder)), default=0.0)

    def probe_arrivals(self) -> dict[str, float]:
        """Arrival time of each latency probe, by its X-Test-Id."""
        found: dict[str, float] = {}
        for folder in self._folders():
            for entry in os.scandir(folder):
                with open(entry.path, "rb") as dump:
                    head = dump.read(4096)
                start = head.find(TEST_ID)
                if start >= 0:
                    value = head[start + len(TEST_ID) :].split(b"\n", 1)[0].strip()
                    found[value.decode()] = entry.stat().st_mtime
        return found

    def clear(self) -> None:
        """Forget the messages arrived so far (the next phase counts from zero)."""
        for folder in self._folders():
            for entry in os.scandir(folder):
                os.unlink(entry.path)

    def stop(self) -> None:
        for process in self._processes:
            process.stop()
        for folder in self._folders():
            shutil.rmtree(folder)

    def _folders(self) -> list[Path]:
        return [path for path in self._dumps.iterdir() if path.is_dir()]


def smtp_source(
    group: ProcessGroup, name: str, address: str, *, sessions: int, messages: int, size: int, recipient: str
) -> Process:
    """`messages` messages of `size` bytes over `sessions` parallel sessions, one message per connection.

    -N numbers the recipients (each message has its own, as real mail does);
    smtp-source exits non-zero on any reply it did not expect.
    """
    argv = [SMTP_SOURCE, "-N", "-M", "customer.test", "-f", "alice@sender.test", "-t", recipient]
    argv += ["-s", str(sessions), "-m", str(messages), "-l", str(size), address]
    return group.start(name, argv)


def check_exit(process: Process, timeout: float) -> None:
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{process.name} not done within {timeout}s") from None
    if code != 0:
        raise RuntimeError(f"{process.name} exited with {code}: {process.log()[-2000:]}")
