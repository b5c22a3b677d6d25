"""A private Postfix instance configured as smarthost is: the reference relay of the benchmark.

Debian's `postfix` package, started with `postfix -c DIR start` from its own
configuration, queue and data directories under a temp folder; the system's
Postfix (if any) is neither read nor touched. It relays for 127.0.0.0/8
only, refuses unknown sender and recipient domains, takes messages up to
20 MiB and delivers by MX lookup to `smtp_port`. Everything else, durability
(an fsync per queue file before the 250) and concurrency (20 per
destination) included, is Postfix's default. No chroot: its delivery agents
read the namespace's /etc/resolv.conf directly.
"""

import os
import subprocess
import time
from pathlib import Path

# The same services as the tests' customer Postfix (harness puts tests/ on the path first).
from support.postfix_instance import MASTER_CF

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {directory}
myhostname = relay.test
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_client_restrictions = permit_mynetworks, reject
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = reject_unknown_sender_domain, reject_unknown_recipient_domain
smtpd_forbid_bare_newline = normalize
message_size_limit = 20971520
smtp_tcp_port = {smtp_port}
"""


class PostfixInstance:
    def __init__(self, directory: Path, port: int, smtp_port: int) -> None:
        self.port = port
        self.smtp_port = smtp_port
        self.config = directory / "etc"
        self.queue = directory / "queue"
        self.log = directory / "maillog"
        self.config.mkdir(parents=True)
        # Postfix's daemons drop to the `postfix` user and must reach their directories.
        directory.chmod(0o755)
        self.queue.mkdir()
        main = MAIN_CF.format(
            directory=directory, queue=self.queue, data=directory / "data", log=self.log, smtp_port=smtp_port
        )
        (self.config / "main.cf").write_text(main)
        (self.config / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))

    def start(self) -> None:
        # `check` creates the queue and data directories with Postfix's owners and modes.
        self._postfix("check")
        self._postfix("start")
        deadline = time.monotonic() + 15
        while self.master_pid() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Postfix did not start: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.master_pid() is not None:
            self._postfix("stop", check=False)
        deadline = time.monotonic() + 15
        while self.master_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def master_pid(self) -> int | None:
        """The master process, once it runs (its pid file is written after it locked the queue)."""
        try:
            pid = int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return None
        # Exited but not reaped: the master's parent is the benchmark's PID namespace's first process.
        return None if state in ("Z", "X") else pid

    def queued(self) -> int:
        """Messages in the queue, in any state (0 once everything is delivered)."""
        folders = ("maildrop", "incoming", "active", "deferred", "hold")
        return sum(len(files) for folder in folders for _, _, files in os.walk(self.queue / folder))

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def _postfix(self, command: str, check: bool = True) -> None:
        result = subprocess.run(
            [POSTFIX, "-c", str(self.config), command], capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            output = result.stdout + result.stderr
            raise RuntimeError(f"postfix {command} failed: {output}{self.log_tail()}")


def postfix_version() -> str:
    return subprocess.run(
        [POSTCONF, "-d", "-h", "mail_version"], capture_output=True, text=True, check=True
    ).stdout.strip()
