"""smarthostctl trace, customer stats and policy check against the run's Redis and a real policy service."""

import json
import re

from delivery.helpers import ctl
from support.relay import Relay

from observability.conftest import STRANGER, Run


def test_trace_tells_a_deferred_message_s_story(run: Run) -> None:
    shown = ctl(run.redis_url, "trace", run.later)
    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    assert lines[:2] == [f"queue id:  {run.later}", "state:     not in the queue"]
    events = [line.split()[3] for line in lines[2:]]
    assert events == ["queued", "attempt", "deferred", "attempt", "settled"]
    assert "client_ip=127.0.0.1" in lines[2] and "customer=loopback" in lines[2]
    assert re.search(r"to=later@example\.test result=deferred remote=\"mx\.example\.test \[127\.0\.0\.2\]\"", lines[3])
    assert "result=delivered" in lines[5]
    assert "delivered=1 bounced=0 attempts=2" in lines[6]


def test_trace_json_links_a_bounce_to_its_dsn(run: Run) -> None:
    trace = json.loads(ctl(run.redis_url, "trace", run.bounced, "--json").stdout)
    assert trace["state"] == "not in the queue"
    queued, attempt, dsn, settled = trace["events"]
    assert (queued["event"], queued["recipients"], queued["size"]) == ("queued", ["nobody@example.test"], 66)
    assert (attempt["result"], attempt["reply"]) == ("bounced", "550 5.1.1 <nobody@example.test>: user unknown")
    assert (dsn["event"], dsn["action"]) == ("dsn", "failed")
    assert (settled["event"], settled["bounced"]) == ("settled", 1)
    report = json.loads(ctl(run.redis_url, "--json", "trace", dsn["dsn_queue_id"]).stdout)
    assert report["events"][0]["dsn_of"] == run.bounced
    assert [event["event"] for event in report["events"]] == ["queued", "attempt", "settled"]


def test_trace_of_an_unknown_id_fails(run: Run) -> None:
    missing = ctl(run.redis_url, "trace", "0000000000000000")
    assert missing.returncode == 1
    assert "no trace of 0000000000000000" in missing.stderr


def test_customer_stats_count_what_the_customer_did(run: Run) -> None:
    stats = json.loads(ctl(run.redis_url, "customer", "stats", "loopback", "--json").stdout)
    assert stats == {
        "customer": "loopback",
        "hours": 24,
        "window_used": 3,
        "senders": [{"sender": "ip:127.0.0.1", "used": 3, "limit": 160, "window_s": 21600.0}],
        "accepted": 3,
        "refused": 1,
        "rate_limited": 0,
        # The DSN the relay wrote is not the customer's mail.
        "delivered": 2,
        "bounced": 1,
        # The breaker's window counts the policy's refusal at RCPT (556) as a bounce too.
        "reputation": {
            "held": False,
            "reason": "",
            "held_by": "",
            "since_ms": 0,
            "suspended": False,
            "parked": 0,
            "window_s": 3600,
            "delivered": 2,
            "bounced": 2,
            "bounce_rate": 0.5,
            "min_messages": 50,
            "max_bounce_rate": 0.1,
        },
    }
    human = ctl(run.redis_url, "customer", "stats", "loopback").stdout
    assert "window used:  3 message(s)\n" in human
    assert re.search(r"ip:127\.0\.0\.1 +3 +160 +6h\n", human)
    assert "  bounced:      1\n" in human
    assert "state:        sending\n" in human
    assert "  threshold:    held past a rate of 0.1 over at least 50 message(s)\n" in human
    unknown = json.loads(ctl(run.redis_url, "customer", "stats", "nobody", "--json").stdout)
    assert (unknown["window_used"], unknown["accepted"]) == (0, 0)


def test_policy_check_shows_each_stage_s_verdict(relay: Relay) -> None:
    policy = relay.start_policy()
    url = relay.env["SMARTHOST_REDIS_URL"]
    addr = {"SMARTHOST_POLICY_ADDR": policy.address}
    args = ["policy", "check", "--client-ip", "127.0.0.1", "--sender", "alice@sender.test"]
    accepted = ctl(url, *args, "--recipient", "bob@example.test", **addr)
    assert accepted.returncode == 0, accepted
    assert accepted.stdout.startswith("customer:  loopback\nqueue id:  ")
    assert re.search(r"recipient bob@example\.test +accept +250 2\.0\.0 Ok", accepted.stdout)

    refused = json.loads(ctl(url, *args, "--recipient", "x@nullmx.test", "--size", "30000000", "--json", **addr).stdout)
    assert refused["accepted"] is False
    assert [(stage["stage"], stage["action"]) for stage in refused["stages"]] == [
        ("connection", "accept"),
        ("sender", "reject"),
        ("recipient x@nullmx.test", "reject"),
    ]
    assert refused["stages"][1]["reply"].startswith("552 5.3.4")
    assert refused["queue_id"] in policy.process.log()

    stranger = ctl(url, "policy", "check", "--client-ip", STRANGER, **addr)
    assert stranger.returncode == 1
    assert re.search(r"connection +reject +554 5\.7\.1 Relay access denied", stranger.stdout)


def test_policy_check_names_an_unreachable_policy_service() -> None:
    # The check needs no Redis: nothing listens at either address.
    down = ctl(
        "redis://127.0.0.1:9/0",
        "policy", "check", "--client-ip", "127.0.0.1",
        SMARTHOST_POLICY_ADDR="127.0.0.1:9", SMARTHOST_POLICY_TIMEOUT="2s",
    )  # fmt: skip
    assert down.returncode == 2
    assert "policy service at 127.0.0.1:9: UNAVAILABLE" in down.stderr
