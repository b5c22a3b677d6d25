"""`make run` (scripts/run-local.sh): a newcomer's test message travels the whole way."""

import os
import re
import signal
import smtplib
from pathlib import Path

from support.ports import free_port, free_ports, wait_for_port
from support.processes import ProcessGroup
from support.waiting import wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run-local.sh"


def test_local_relay_delivers_to_the_demo_mailbox_and_stops_on_ctrl_c(processes: ProcessGroup, tmp_path: Path) -> None:
    smtp = free_port()
    metrics = free_ports(4)  # the script uses this port and the three above it
    env = {
        "SMARTHOST_SMTP_LISTEN": f"127.0.0.1:{smtp}",
        "SMARTHOST_POLICY_LISTEN": f"127.0.0.1:{free_port()}",
        "SMARTHOST_LOCAL_STATE": str(tmp_path / "run"),
        "SMARTHOST_LOCAL_REDIS_PORT": str(free_port()),
        "SMARTHOST_LOCAL_DNS_PORT": str(free_port()),
        "SMARTHOST_LOCAL_MAILBOX_PORT": str(free_port("127.0.0.2")),
        "SMARTHOST_LOCAL_METRICS_BASE": str(metrics),
    }
    relay = processes.start("run-local", ["bash", str(SCRIPT)], env)
    wait_until(lambda: "Ctrl-C stops everything" in relay.log(), timeout=60, what="the relay to start")
    wait_for_port("127.0.0.1", smtp)

    with smtplib.SMTP("127.0.0.1", smtp, timeout=15) as client:
        client.ehlo("newcomer.test")
        assert client.mail("you@sender.test")[0] == 250
        assert client.rcpt("someone@demo.test")[0] == 250
        code, reply = client.data(b"Subject: hello\r\n\r\nfirst message\r\n")
    assert code == 250, reply
    queue_id = re.search(rb"queued as (\w+)", reply)
    assert queue_id
    wait_until(
        lambda: f"with ESMTP id {queue_id.group(1).decode()}" in relay.log() and "first message" in relay.log(),
        timeout=30,
        what="the demo mailbox to print the message",
    )

    relay.signal(signal.SIGINT)
    assert relay.wait(30) == 0 or "stopping..." in relay.log()
    # Every process the script started is gone with it.
    wait_until(lambda: not _group_alive(relay.pid), timeout=30, what="the script's processes to stop")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
