"""The queue's two tiers with real Redis, PostgreSQL, DNS, SMTP peers and services.

Deferred bodies wait on disk, new bodies go to disk past the memory mark, a
message no tier can take hears 452 4.3.1 and is never delivered, and
delivery settles mail with Redis past its maxmemory.
"""

import smtplib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from support.load import Message, body, send_all
from support.postgres_server import PostgresServer
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import BIN, Relay
from support.sinks import SmtpSink
from support.smtp_wire import Wire
from support.standard import UNLIMITED_POLICY
from support.waiting import wait_until

from backlog.world import DEAD, DEAD_MX, FAST, IdSink, spool_rows, stats, tiers

MiB = 1024 * 1024
KiB = 1024


def messages(prefix: str, count: int, to: str) -> list[Message]:
    return [Message(f"{prefix}-{n}", "alice@sender.test", f"rcpt{n}@{to}") for n in range(count)]


def start(relay: Relay, *, delivery: bool = True, **env: str) -> int:
    """Policy, ingress and (unless told not) one delivery worker; the ingress port."""
    relay.policy_file.write_text(UNLIMITED_POLICY)
    policy = relay.start_policy()
    ingress = relay.start_ingress(policy, **env)
    if delivery:
        relay.start_delivery(**FAST, **env)
    return ingress.port


def test_deferred_bodies_wait_on_disk_and_arrive_when_the_destination_returns(
    relay: Relay, postgres: PostgresServer, processes: ProcessGroup, tmp_path: Path, mx_port: int
) -> None:
    healthy = IdSink(processes, tmp_path, "127.0.0.2", mx_port)
    port = start(relay, SMARTHOST_SPOOL_URL=postgres.url)
    stuck = messages("stuck", 20, DEAD)
    codes = send_all("127.0.0.1", port, [*stuck, *messages("fine", 5, "example.test")], 50 * KiB, sessions=4)
    assert set(codes.values()) == {250}, codes

    wait_until(lambda: len(healthy.ids()) == 5, timeout=30, what="mail to the healthy destination")
    wait_until(lambda: tiers(relay.env["SMARTHOST_REDIS_URL"])["disk_messages"] == 20, timeout=30, what="move")
    counts = tiers(relay.env["SMARTHOST_REDIS_URL"])
    assert counts["memory_messages"] == 0 and counts["memory_bytes"] == 0, counts
    assert counts["disk_bytes"] >= 20 * 50 * KiB, counts
    assert spool_rows(postgres.url) == 20
    summary = stats(relay.env["SMARTHOST_REDIS_URL"], SMARTHOST_SPOOL_URL=postgres.url)
    assert summary["spool"] == {"rows": 20, "bytes_on_disk": summary["spool"]["bytes_on_disk"]}  # type: ignore[index]

    # An operator reads a body that only the disk tier holds.
    oldest = (
        subprocess.run(
            [str(BIN / "smarthostctl"), "queue", "list", "--limit", "1"],
            env={"SMARTHOST_REDIS_URL": relay.env["SMARTHOST_REDIS_URL"]},
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[1]
        .split()[0]
    )
    shown = subprocess.run(
        [str(BIN / "smarthostctl"), "queue", "show", oldest],
        env={"SMARTHOST_REDIS_URL": relay.env["SMARTHOST_REDIS_URL"], "SMARTHOST_SPOOL_URL": postgres.url},
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "X-Test-Id: stuck-" in shown.stdout, shown

    back = IdSink(processes, tmp_path, DEAD_MX, mx_port)
    wait_until(lambda: len(set(back.ids())) == 20, timeout=60, what="the backlog drained")
    assert set(back.ids()) == {message.test_id for message in stuck}
    wait_until(lambda: spool_rows(postgres.url) == 0, timeout=15, what="spool rows deleted")
    assert tiers(relay.env["SMARTHOST_REDIS_URL"]) == {
        "memory_messages": 0,
        "memory_bytes": 0,
        "disk_messages": 0,
        "disk_bytes": 0,
    }


def test_past_the_memory_mark_new_bodies_go_straight_to_disk(
    relay: Relay, postgres: PostgresServer, processes: ProcessGroup, tmp_path: Path, mx_port: int
) -> None:
    port = start(relay, delivery=False, SMARTHOST_SPOOL_URL=postgres.url, SMARTHOST_QUEUE_MEMORY_MAX=str(MiB))
    sent = messages("big", 24, "example.test")
    codes = send_all("127.0.0.1", port, sent, 100 * KiB, sessions=1)
    assert set(codes.values()) == {250}, codes
    counts = tiers(relay.env["SMARTHOST_REDIS_URL"])
    assert 0 < counts["memory_bytes"] <= MiB, counts
    assert counts["memory_messages"] + counts["disk_messages"] == 24, counts
    assert counts["disk_messages"] >= 12 and spool_rows(postgres.url) == counts["disk_messages"], counts

    sink = IdSink(processes, tmp_path, "127.0.0.2", mx_port)
    relay.start_delivery(**FAST, SMARTHOST_SPOOL_URL=postgres.url)
    wait_until(lambda: len(set(sink.ids())) == 24, timeout=60, what="every message delivered")
    assert set(sink.ids()) == {message.test_id for message in sent}
    wait_until(lambda: spool_rows(postgres.url) == 0, timeout=15, what="spool rows deleted")


def test_without_room_in_any_tier_the_answer_is_452_and_nothing_is_delivered(
    relay: Relay, processes: ProcessGroup, tmp_path: Path, mx_port: int
) -> None:
    """No disk tier: the memory mark is the end. SIZE tells before DATA, else the end of DATA does."""
    port = start(relay, delivery=False, SMARTHOST_QUEUE_MEMORY_MAX=str(MiB))
    sent = messages("full", 14, "example.test")
    codes = send_all("127.0.0.1", port, sent, 100 * KiB, sessions=1)
    accepted = {test_id for test_id, code in codes.items() if code == 250}
    assert len(accepted) == 10 and set(codes.values()) == {250, 452}, codes

    time.sleep(1.5)  # the ingress reads the tiers' figures once a second
    with Wire("127.0.0.1", port) as wire:
        wire.greeting()
        wire.command("EHLO customer.test")
        refused = wire.command(f"MAIL FROM:<alice@sender.test> SIZE={100 * KiB}")
        assert refused.code == 452 and refused.enhanced == b"4.3.1", refused
        assert wire.command("MAIL FROM:<alice@sender.test>").code == 250
        assert wire.command("RCPT TO:<x@example.test>").code == 250
        assert wire.command("DATA").code == 354
        wire.send(body("late", 100 * KiB) + b"\r\n.\r\n")
        late = wire.reply()
        assert late.code == 452 and late.enhanced == b"4.3.1", late

    sink = IdSink(processes, tmp_path, "127.0.0.2", mx_port)
    relay.start_delivery(**FAST)
    wait_until(lambda: len(set(sink.ids())) == 10, timeout=60, what="the accepted messages delivered")
    time.sleep(2)
    assert set(sink.ids()) == accepted


def test_with_the_disk_tier_down_a_full_memory_tier_answers_452_until_it_is_back(
    relay: Relay, postgres: PostgresServer, processes: ProcessGroup, tmp_path: Path, mx_port: int
) -> None:
    port = start(relay, delivery=False, SMARTHOST_SPOOL_URL=postgres.url, SMARTHOST_QUEUE_MEMORY_MAX=str(MiB))
    postgres.stop()
    first = send_all("127.0.0.1", port, messages("down", 12, "example.test"), 100 * KiB, sessions=1)
    assert sorted(first.values()).count(250) == 10 and set(first.values()) == {250, 452}, first

    postgres.start()
    time.sleep(2.5)  # a failed spool is tried again after two seconds
    second = send_all("127.0.0.1", port, messages("up", 4, "example.test"), 100 * KiB, sessions=1)
    assert set(second.values()) == {250}, second
    assert spool_rows(postgres.url) == 4

    sink = IdSink(processes, tmp_path, "127.0.0.2", mx_port)
    relay.start_delivery(**FAST, SMARTHOST_SPOOL_URL=postgres.url)
    wanted = {test_id for test_id, code in {**first, **second}.items() if code == 250}
    wait_until(lambda: set(sink.ids()) == wanted, timeout=60, what="every accepted message delivered")


def test_delivery_settles_with_redis_past_its_maxmemory(
    relay: Relay, redis_server: RedisServer, processes: ProcessGroup, tmp_path: Path, mx_port: int
) -> None:
    """Acks, deferrals, leases and removals go on; new mail is refused with 452; the trace gives way."""
    port = start(relay, delivery=True)
    stuck = messages("oom", 30, DEAD)
    assert set(send_all("127.0.0.1", port, stuck, 20 * KiB, sessions=2).values()) == {250}
    wait_until(lambda: stats(relay.env["SMARTHOST_REDIS_URL"])["deferred"] == 30, timeout=30, what="deferral")

    client = redis_server.client()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used - 64 * KiB))
    time.sleep(1.5)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("customer.test")
        code, text = smtp.docmd("MAIL FROM:<alice@sender.test>")
        assert code == 452 and text.startswith(b"4.3.1"), (code, text)

    sink = IdSink(processes, tmp_path, DEAD_MX, mx_port)
    wait_until(lambda: len(set(sink.ids())) == 30, timeout=60, what="the backlog drained past maxmemory")
    assert set(sink.ids()) == {message.test_id for message in stuck}
    wait_until(lambda: stats(relay.env["SMARTHOST_REDIS_URL"])["total"] == 0, timeout=15, what="queue empty")


def test_a_bounce_and_a_delay_notice_read_the_body_from_disk(
    relay: Relay, postgres: PostgresServer, sinks: Callable[..., SmtpSink]
) -> None:
    """Deferred twice (its body moves to the spool; the second time a delay notice), then refused for good.

    Both DSNs carry the message's headers, read back from the spool.
    """
    answers = iter(["451 4.2.0 mailbox busy"] * 2)
    sinks("example.test", lambda stage, arg: next(answers, "550 5.1.1 no such user") if stage == "RCPT" else None)
    sender = sinks("sender.test")
    relay.policy_file.write_text(UNLIMITED_POLICY)
    ingress = relay.start_ingress(relay.start_policy(), SMARTHOST_SPOOL_URL=postgres.url)
    relay.start_delivery(**FAST, SMARTHOST_SPOOL_URL=postgres.url, SMARTHOST_DELAY_WARNING="1s")
    codes = send_all(
        "127.0.0.1", ingress.port, [Message("dsn-1", "alice@sender.test", "bob@example.test")], 30 * KiB, 1
    )
    assert codes == {"dsn-1": 250}

    wait_until(lambda: len(sender.messages) == 2, timeout=30, what="a delay notice and a bounce")
    for dsn in sender.messages:
        assert dsn.mail_from == "<>" and dsn.rcpt_tos == ("alice@sender.test",)
        assert b"X-Test-Id: dsn-1" in dsn.data, dsn.data[:2000]
    assert [b"Action: delayed" in dsn.data for dsn in sender.messages] == [True, False]
    wait_until(lambda: spool_rows(postgres.url) == 0, timeout=15, what="the spool row deleted")
