"""A private Postfix instance in a temporary folder: a customer's MTA relaying through the ingress.

Mail handed to its smtpd (on a free loopback port) is delivered by Postfix's
own `smtp` client to `relayhost`, with PIPELINING and STARTTLS when offered,
as a customer's server would send it. Nothing of the system's Postfix is used
but its programs.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from support.ports import free_port, wait_for_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

# Upstream's master.cf services that relaying needs, chroot off, so the temporary
# folders are all it touches. The benchmark's reference Postfix uses it too.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {workdir}/queue
data_directory = {workdir}/data
maillog_file = {workdir}/maillog
maillog_file_prefixes = {workdir}
myhostname = customer.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = may
# Logs every command and reply, so a test can see what the smtp client pipelined.
debug_peer_list = 127.0.0.1
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


class PostfixInstance:
    def __init__(self, relay_port: int) -> None:
        # Not under pytest's private tmp folder: Postfix's daemons run as the postfix user.
        self.workdir = Path(tempfile.mkdtemp(prefix="postfix-"))
        self.workdir.chmod(0o755)
        self.config = self.workdir / "etc"
        self.config.mkdir()
        (self.workdir / "queue").mkdir()
        data = self.workdir / "data"
        data.mkdir()
        shutil.chown(data, "postfix")
        self.port = free_port()
        (self.config / "main.cf").write_text(MAIN_CF.format(workdir=self.workdir, relay_port=relay_port))
        (self.config / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        self._postfix("start")
        wait_for_port("127.0.0.1", self.port)

    def _postfix(self, command: str) -> None:
        subprocess.run([POSTFIX, "-c", str(self.config), command], check=True, capture_output=True, timeout=60)

    def log(self) -> str:
        maillog = self.workdir / "maillog"
        return maillog.read_text() if maillog.exists() else ""

    def stop(self) -> None:
        self._postfix("stop")
        shutil.rmtree(self.workdir, ignore_errors=True)
