"""Faults injected while a bounded stream of mail flows: nothing answered 250 is lost.

FAULT_MESSAGES messages (300 in `make test`, 2,000 in `make test-faults`) go
through the ingress over 6 sessions, each resent as a client MTA would when
answered 4xx or cut off, every attempt with its own id (`X-Test-Id: n.k`).
Meanwhile, at moments drawn from a printed seed (FAULT_SEED repeats a run),
the suite SIGKILLs and restarts a delivery worker, the ingress and the
policy service, kills and restarts redis-server and PostgreSQL (the spool is
on), makes the destination MX stall, answer 4xx and drop connections, and
stops the DNS server for a while. At the end, attempt by attempt: every one
answered 250 arrived, none answered 4xx or 5xx did, duplicates are counted,
and the queue is empty.
"""

import os
import random
import signal
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dns_server import DnsServer
from support.load import body
from support.postgres_server import PostgresServer
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Listener, Relay
from support.standard import UNLIMITED_POLICY
from support.waiting import wait_until

from faults.faulty_mx import FaultyMx

COUNT = int(os.environ.get("FAULT_MESSAGES", "300"))
SEED = int(os.environ.get("FAULT_SEED") or random.randrange(1 << 30))
SESSIONS = 6
SIZE = 8 * 1024
DELIVERY = {
    "SMARTHOST_RETRY_SCHEDULE": "1s",
    "SMARTHOST_HEARTBEAT_TTL": "3s",
    "SMARTHOST_DELIVERY_TIMEOUT": "15s",
    "SMARTHOST_DELIVERY_CONNECT_TIMEOUT": "3s",
    "SMARTHOST_CONSUMER_NAME": "worker-0",
}
FAULTS = ["delivery", "ingress", "policy", "redis", "postgres", "mx-stall", "mx-tempfail", "mx-drop", "dns"]


class Stack:
    """The relay's processes, restartable on the addresses their peers know."""

    def __init__(self, relay: Relay, spool: str) -> None:
        self.relay = relay
        self.env = {"SMARTHOST_SPOOL_URL": spool}
        self.policy = relay.start_policy()
        self.ingress = self._ingress()
        self.delivery = relay.start_delivery(**DELIVERY, **self.env)

    def _ingress(self, port: int = 0) -> Listener:
        listen = {"SMARTHOST_SMTP_LISTEN": f"127.0.0.1:{port}"} if port else {}
        return self.relay.start_ingress(self.policy, **self.env, **listen)

    def kill(self, which: str) -> None:
        listener: Listener = getattr(self, which)
        listener.process.popen.kill()
        listener.process.wait(10)
        if which == "policy":
            self.policy = self.relay.start_policy(SMARTHOST_POLICY_LISTEN=self.policy.address)
        elif which == "ingress":
            self.ingress = self._ingress(self.ingress.port)
        else:
            # Under its own name, as a container restarted in its pod.
            self.delivery = self.relay.start_delivery(**DELIVERY, **self.env)


class Sender(threading.Thread):
    """Sends every message until it is answered 250 (or the deadline passes); each attempt's answer by id."""

    def __init__(self, port: Callable[[], int], numbers: list[int], pace: float, deadline: float) -> None:
        super().__init__(daemon=True)
        self._port = port
        self._numbers = numbers
        # Seconds between messages, so the stream spans the faults' window.
        self._pace = pace
        self._deadline = deadline
        self.answers: dict[str, int] = {}

    def run(self) -> None:
        client: smtplib.SMTP | None = None
        for n in self._numbers:
            attempt = 0
            while time.monotonic() < self._deadline:
                test_id = f"{n}.{attempt}"
                attempt += 1
                try:
                    if client is None:
                        client = smtplib.SMTP("127.0.0.1", self._port(), timeout=30)
                        client.ehlo("customer.test")
                    client.sendmail("alice@sender.test", [f"r{n}@example.test"], body(test_id, SIZE))
                    self.answers[test_id] = 250
                    time.sleep(self._pace)
                    break
                except smtplib.SMTPResponseException as exc:
                    self.answers[test_id] = exc.smtp_code
                    client = _reset(client)
                    if exc.smtp_code >= 500:
                        break
                except smtplib.SMTPRecipientsRefused as exc:
                    self.answers[test_id] = next(iter(exc.recipients.values()))[0]
                    client = _reset(client)
                except (smtplib.SMTPException, OSError):
                    self.answers[test_id] = 0  # no answer: the client cannot know, and sends again
                    client = None
                time.sleep(0.3)


def _reset(client: smtplib.SMTP | None) -> smtplib.SMTP | None:
    try:
        if client is not None:
            client.rset()
        return client
    except (smtplib.SMTPException, OSError):
        return None


@pytest.fixture
def mx(mx_port: int, mx_hosts: dict[str, str]) -> Iterator[FaultyMx]:
    server = FaultyMx(mx_hosts["example.test"], mx_port)
    yield server
    server.stop()


def test_nothing_answered_250_is_lost_whatever_fails(
    relay: Relay,
    redis_server: RedisServer,
    postgres: PostgresServer,
    dns_server: DnsServer,
    mx: FaultyMx,
    processes: ProcessGroup,
    tmp_path: Path,
) -> None:
    print(f"\nfault seed {SEED} (FAULT_SEED={SEED} repeats this run)")
    rng = random.Random(SEED)
    relay.policy_file.write_text(UNLIMITED_POLICY)
    stack = Stack(relay, postgres.url)
    window = max(20.0, COUNT / 15)
    # Each fault once, at a moment drawn from the seed within the sending window, in drawn order.
    schedule = sorted((rng.uniform(0.1, 0.9) * window, fault) for fault in FAULTS)

    deadline = time.monotonic() + window * 4 + 60
    pace = window * SESSIONS / COUNT
    senders = [
        Sender(lambda: stack.ingress.port, list(range(first, COUNT, SESSIONS)), pace, deadline)
        for first in range(SESSIONS)
    ]
    started = time.monotonic()
    for sender in senders:
        sender.start()
    for at, fault in schedule:
        time.sleep(max(0.0, started + at - time.monotonic()))
        print(f"  {time.monotonic() - started:5.1f}s {fault}")
        inject(fault, stack, redis_server, postgres, dns_server, mx)
    for sender in senders:
        sender.join(max(1.0, deadline - time.monotonic()))
    answers = {test_id: code for sender in senders for test_id, code in sender.answers.items()}
    accepted = {test_id for test_id, code in answers.items() if code == 250}
    refused = {test_id for test_id, code in answers.items() if 400 <= code < 600}
    assert len(accepted) == COUNT, f"{COUNT - len(accepted)} messages never accepted"

    client = redis_server.client()
    wait_until(lambda: set(mx.handler.arrived) >= accepted, timeout=180, what="every accepted message delivered")
    wait_until(lambda: client.zcard("smarthost:queue:index") == 0, timeout=60, what="the queue empty")
    arrived = mx.handler.arrived
    duplicates = sum(count - 1 for count in arrived.values())
    unanswered = {test_id for test_id, code in answers.items() if code == 0}
    print(
        f"fault run: {COUNT} messages, {len(answers)} attempts ({len(refused)} answered 4xx/5xx,"
        f" {len(unanswered)} cut off), {len(FAULTS)} faults; lost 0, duplicated {duplicates},"
        f" delivered after a 4xx: {len(refused & set(arrived))}"
        f", cut-off attempts delivered anyway: {len(unanswered & set(arrived))}"
    )
    assert not refused & set(arrived), f"answered 4xx/5xx yet delivered: {sorted(refused & set(arrived))[:10]}"
    assert set(arrived) <= accepted | unanswered


def inject(
    fault: str,
    stack: Stack,
    redis_server: RedisServer,
    postgres: PostgresServer,
    dns_server: DnsServer,
    mx: FaultyMx,
) -> None:
    if fault in ("delivery", "ingress", "policy"):
        stack.kill(fault)
    elif fault == "redis":
        assert redis_server.process is not None
        redis_server.process.popen.kill()
        redis_server.process.wait(10)
        redis_server.start()  # its append-only file brings the queue back
    elif fault == "postgres":
        postgres.crash()
        time.sleep(1)
        postgres.start()
    elif fault == "dns":
        dns_server.process.signal(signal.SIGSTOP)
        time.sleep(4)
        dns_server.process.signal(signal.SIGCONT)
    else:
        mx.handler.mode = fault.removeprefix("mx-")
        time.sleep(4)
        mx.handler.mode = "ok"
