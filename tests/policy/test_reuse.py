"""Verdict reuse: the ingress answers from what the policy marked reusable, and only that.

A steady stream from one host costs one policy call per message (CheckMessage,
the rate limit); a policy change still reaches the ingress once the lifetime
has passed; temporary failures and the rate limit are always asked.
"""

import smtplib
import time

from support.policy_zone import RECIPIENT, SENDER
from support.relay import Listener, Relay
from support.scrape import Scrape
from support.smtp_replies import data_status, status
from support.waiting import wait_until

BODY = b"Subject: reuse\r\n\r\nHello.\r\n"
# Longer than any of these tests: what is reused stays reused while they run.
LONG = "300s"
CHECKS = ("CheckConnection", "CheckSender", "CheckRecipient", "CheckMessage")


def send(ingress: Listener, sender: str = SENDER, recipients: tuple[str, ...] = (RECIPIENT,)) -> list[str]:
    """One session, one transaction: the reply to MAIL, to each RCPT and to the message, up to the first refusal."""
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
        client.ehlo("customer.test")
        replies = [status(client.mail(sender))]
        for recipient in recipients:
            if replies[-1][0] == "2":
                replies.append(status(client.rcpt(recipient)))
        if replies[-1][0] == "2":
            replies.append(data_status(client, BODY))
        return replies


def calls(ingress: Listener) -> dict[tuple[str, str], float]:
    """The ingress's policy calls so far, by RPC and result (ok: asked; reused: answered from a kept verdict)."""
    metrics = Scrape(ingress.metrics_port)
    return {
        (rpc, result): metrics.value("smarthost_ingress_policy_calls_total", rpc=rpc, result=result)
        for rpc in CHECKS
        for result in ("ok", "reused")
    }


def asked(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], result: str) -> dict[str, float]:
    return {rpc: after[(rpc, result)] - before[(rpc, result)] for rpc in CHECKS}


def decisions(policy: Listener) -> dict[str, float]:
    return Scrape(policy.metrics_port).by("smarthost_policy_decision_duration_seconds_count", "stage")


def test_a_second_message_from_the_same_host_costs_one_policy_call(policy_relay: Relay) -> None:
    policy_relay.policy_file.write_text(
        "customers:\n  - name: loopback\n    networks: [127.0.0.1/32]\n"
        "    maxMessageSize: 100000\n    maxRecipients: 2\n"
    )
    policy = policy_relay.start_policy(SMARTHOST_POLICY_REUSE_TIME=LONG)
    ingress = policy_relay.start_ingress(policy)
    assert send(ingress) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    first = calls(ingress)
    assert asked({key: 0 for key in first}, first, "ok") == dict.fromkeys(CHECKS, 1)

    assert send(ingress) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    second = calls(ingress)
    assert asked(first, second, "ok") == {
        "CheckConnection": 0,
        "CheckSender": 0,
        "CheckRecipient": 0,
        "CheckMessage": 1,
    }
    assert asked(first, second, "reused") == {
        "CheckConnection": 1,
        "CheckSender": 1,
        "CheckRecipient": 1,
        "CheckMessage": 0,
    }
    assert decisions(policy) == {"connection": 1, "sender": 1, "recipient": 1, "message": 2}

    # A verdict is reused only within what it covered: a recipient past the
    # count is asked again, and refused (a SIZE over the limit the ingress
    # itself refuses, with the limit the connection verdict named).
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
        client.ehlo("customer.test")
        assert status(client.mail(SENDER, ["SIZE=100001"])) == "552 5.3.4"
        assert status(client.mail(SENDER, ["SIZE=100000"])) == "250 2.1.0"
        assert [status(client.rcpt(f"bob{n}@example.test")) for n in range(3)] == [
            "250 2.1.5",
            "250 2.1.5",
            "452 4.5.3",
        ]
    assert decisions(policy) == {"connection": 1, "sender": 1, "recipient": 2, "message": 2}


def test_a_policy_change_takes_effect_once_the_lifetime_has_passed(policy_relay: Relay) -> None:
    reuse = 2.0
    policy = policy_relay.start_policy(SMARTHOST_POLICY_REUSE_TIME=f"{reuse}s", SMARTHOST_POLICY_RELOAD_INTERVAL="0.2s")
    ingress = policy_relay.start_ingress(policy)
    assert send(ingress) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]

    policy_relay.policy_file.write_text("customers:\n  - name: elsewhere\n    networks: [192.0.2.0/24]\n")
    wait_until(lambda: "policy file reloaded" in policy.process.log(), what="the reload")
    time.sleep(reuse)
    assert send(ingress) == ["554 5.7.1"]


def test_with_reuse_off_every_check_is_asked(policy_relay: Relay) -> None:
    policy = policy_relay.start_policy(SMARTHOST_POLICY_REUSE_TIME="0")
    ingress = policy_relay.start_ingress(policy)
    for _ in range(2):
        assert send(ingress) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    made = calls(ingress)
    assert asked(dict.fromkeys(made, 0), made, "ok") == dict.fromkeys(CHECKS, 2)
    assert asked(dict.fromkeys(made, 0), made, "reused") == dict.fromkeys(CHECKS, 0)


def test_temporary_failures_are_never_reused(policy_relay: Relay) -> None:
    policy = policy_relay.start_policy(SMARTHOST_POLICY_REUSE_TIME=LONG)
    ingress = policy_relay.start_ingress(policy)
    # DNS trouble: each MAIL asks again.
    for _ in range(2):
        assert send(ingress, sender="alice@servfail.test") == ["451 4.4.3"]
    assert decisions(policy)["sender"] == 2

    # The policy unavailable: once it is back, the next session is answered by it.
    policy.process.stop()
    assert send(ingress) == ["451 4.3.0"]
    policy_relay.start_policy(SMARTHOST_POLICY_REUSE_TIME=LONG, SMARTHOST_POLICY_LISTEN=policy.address)
    wait_until(lambda: send(ingress)[0] == "250 2.1.0", timeout=20, what="accepted again")


def test_the_rate_limit_refuses_at_its_limit_with_reuse_on(policy_relay: Relay) -> None:
    policy_relay.policy_file.write_text(
        "customers:\n  - name: loopback\n    networks: [127.0.0.1/32]\n    rateLimit: {messages: 3, per: 1h}\n"
    )
    ingress = policy_relay.start_ingress(policy_relay.start_policy(SMARTHOST_POLICY_REUSE_TIME=LONG))
    assert [send(ingress)[-1] for _ in range(5)] == ["250 2.0.0"] * 3 + ["450 4.7.1"] * 2
