"""smarthostctl against a real queue: stats, list, show, retry, delete, tables and --json."""

import json
import re
import signal
from collections.abc import Callable

from support.redis_server import RedisServer
from support.relay import Relay
from support.sinks import SmtpSink
from support.waiting import wait_until

from delivery.helpers import FAST, ctl, put


def test_operators_see_and_steer_the_queue(
    relay: Relay, sinks: Callable[..., SmtpSink], redis_server: RedisServer
) -> None:
    url = redis_server.url
    sinks("example.test", lambda stage, arg: "451 4.7.1 greylisted, try later" if stage == "RCPT" else None)
    worker = relay.start_delivery(**{**FAST, "SMARTHOST_RETRY_SCHEDULE": "1h"})
    first = put(url, "alice@sender.test", ["bob@example.test", "carol@example.test"])
    second = put(url, "dave@sender.test", ["erin@example.test"])
    wait_until(lambda: '"deferred": 2' in ctl(url, "queue", "stats", "--json").stdout, timeout=30, what="deferral")
    worker.process.signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0

    stats = ctl(url, "queue", "stats")
    assert stats.returncode == 0, stats
    expected = (
        r"ready +0\nin flight +0\ndeferred +2\ndead +0\ntotal +2\noldest age +\d+s\n"
        r"memory +2 messages, \d+ bytes \(Redis\)\ndisk +0 messages, 0 bytes \(spool\)\n"
    )
    assert re.fullmatch(expected, stats.stdout), stats.stdout
    counts = json.loads(ctl(url, "--json", "queue", "stats").stdout)
    assert {key: counts[key] for key in ("ready", "in_flight", "deferred", "dead", "total")} == {
        "ready": 0,
        "in_flight": 0,
        "deferred": 2,
        "dead": 0,
        "total": 2,
    }

    listing = ctl(url, "queue", "list").stdout.splitlines()
    assert listing[0].split() == [
        "QUEUE", "ID", "STATE", "AGE", "SIZE", "SENDER", "RECIPIENTS", "ATTEMPTS", "NEXT", "ATTEMPT", "LAST", "ERROR",
    ]  # fmt: skip
    assert re.match(
        rf"{first} +deferred +\d+s +\d+ +<alice@sender\.test> +bob@example\.test,carol@example\.test +1 +in 59m"
        r" +451 4\.7\.1 greylisted, try later$",
        listing[1],
    ), listing
    assert listing[2].startswith(second) and "<dave@sender.test>" in listing[2]

    shown = ctl(url, "queue", "show", first).stdout
    assert f"queue id:     {first}\nstate:        deferred\n" in shown
    assert "sender:       <alice@sender.test>\n" in shown
    assert "attempts:     1\n" in shown
    assert re.search(r"bob@example\.test +pending +mx\.example\.test \[127\.0\.0\.2\] +451 4\.7\.1 greylisted", shown)
    assert "headers:\n  From: Alice <alice@sender.test>\n" in shown
    detail = json.loads(ctl(url, "queue", "show", first, "--json").stdout)
    assert detail["state"] == "deferred"
    assert [rcpt["state"] for rcpt in detail["recipients"]] == ["pending", "pending"]
    assert "Subject: delivery test" in detail["headers"]

    assert ctl(url, "queue", "retry", first).stdout == f"{first}: deferred -> ready\n"
    assert ctl(url, "queue", "retry", first).stdout == f"{first}: already ready or being delivered\n"
    assert '"ready": 1' in ctl(url, "queue", "stats", "--json").stdout
    retried = ctl(url, "queue", "retry", "--all").stdout
    assert retried == f"{second}: deferred -> ready\n1 message(s) queued for delivery now\n"

    deleted = ctl(url, "queue", "delete", first, "--bounce")
    assert deleted.returncode == 0
    dsn_id = re.fullmatch(rf"{first}: deleted, DSN (\w+) queued to the sender\n", deleted.stdout)
    assert dsn_id, deleted.stdout
    after = json.loads(ctl(url, "queue", "list", "--json").stdout)
    assert [(item["queue_id"], item["mail_from"]) for item in after] == [
        (second, "dave@sender.test"),
        (dsn_id.group(1), ""),
    ]
    assert after[1]["recipients"][0]["address"] == "alice@sender.test"

    assert ctl(url, "queue", "delete", second).stdout == f"{second}: deleted\n"
    missing = ctl(url, "queue", "show", second)
    assert (missing.returncode, missing.stderr) == (1, f"smarthostctl: no message {second} in the queue\n")
    assert ctl(url, "queue", "delete", second).returncode == 1
    assert ctl(url, "queue", "retry", second).returncode == 1
