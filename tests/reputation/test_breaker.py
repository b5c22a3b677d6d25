"""The reputation breaker with real processes: a customer spraying bounces is held, another still sends.

acme (127.0.0.1) and bravo (127.0.0.9) relay through one ingress; example.test
refuses `nobody@` with 550 5.1.1, other.test is down until a test starts it.
"""

import json
import smtplib
from collections.abc import Callable

from delivery.helpers import FAST, ctl
from support.relay import Listener, Relay
from support.scrape import Scrape
from support.sinks import SmtpSink
from support.smtp_replies import data_status, status
from support.waiting import wait_until

POLICY = """
defaults:
  reputation: {window: 1h, minMessages: 4, maxBounceRate: 0.5}
customers:
  - name: acme
    networks: [127.0.0.1/32]
  - name: bravo
    networks: [127.0.0.9/32]
"""

BODY = b"From: <alice@sender.test>\r\nSubject: breaker\r\n\r\nHello\r\n"


def refuse_nobody(stage: str, argument: str) -> str | None:
    return "550 5.1.1 No such user" if stage == "RCPT" and argument.startswith("nobody@") else None


def send(ingress: Listener, recipient: str, source: str = "127.0.0.1") -> str:
    """The first reply that is not a success, or the 250 that queued the message."""
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("customer.test")
        for reply in (client.mail("alice@sender.test"), client.rcpt(recipient)):
            if reply[0] >= 400:
                return status(reply)
        return data_status(client, BODY)


def mail_reply(ingress: Listener) -> str:
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
        client.ehlo("customer.test")
        code, text = client.mail("alice@sender.test")
    return f"{code} {text.decode()}"


def queue_states(relay: Relay) -> dict[str, str]:
    listing = json.loads(ctl(relay.env["SMARTHOST_REDIS_URL"], "queue", "list", "--json").stdout)
    return {entry["queue_id"]: entry["state"] for entry in listing}


def customer(relay: Relay, name: str) -> dict[str, object]:
    stats = json.loads(ctl(relay.env["SMARTHOST_REDIS_URL"], "customer", "stats", name, "--json").stdout)
    reputation: dict[str, object] = stats["reputation"]
    return reputation


def start(relay: Relay) -> tuple[Listener, Listener]:
    """The ingress and the delivery worker."""
    relay.policy_file.write_text(POLICY)
    policy = relay.start_policy(SMARTHOST_POLICY_RELOAD_INTERVAL="0.2s")
    delivery = relay.start_delivery(**FAST)
    return relay.start_ingress(policy, host="0.0.0.0"), delivery


def test_a_customer_past_its_bounce_rate_is_held_until_released(relay: Relay, sinks: Callable[..., SmtpSink]) -> None:
    example, dsns = sinks("example.test", refuse_nobody), sinks("sender.test")
    ingress, delivery = start(relay)
    # Queued while other.test is down: deferred, then parked once acme is held.
    assert send(ingress, "carol@other.test") == "250 2.0.0"
    assert send(ingress, "bob@example.test") == "250 2.0.0"
    wait_until(lambda: len(example.messages) == 1, what="acme's good message")
    for _ in range(3):
        assert send(ingress, "nobody@example.test") == "250 2.0.0"
    # 3 bounced of 4 (the deferral is no outcome): past 0.5 of at least 4.
    wait_until(lambda: bool(customer(relay, "acme")["held"]), what="acme held")
    held = customer(relay, "acme")
    assert held["reason"] == "bounce rate 0.75 (3 of 4) over 1h"
    assert (held["held_by"], held["delivered"], held["bounced"]) == ("breaker", 1, 3)
    wait_until(lambda: len(dsns.messages) == 3, what="the three DSNs")
    metrics = Scrape(delivery.metrics_port)
    assert metrics.value("smarthost_reputation_holds_total") == 1
    wait_until(lambda: Scrape(delivery.metrics_port).value("smarthost_customers_held") == 1, what="the held gauge")
    assert "customer held" in delivery.process.log()

    # New mail refused, at whichever stage first asks the policy since the hold.
    refused = send(ingress, "bob@example.test")
    assert refused == "451 4.7.1", refused
    assert send(ingress, "bob@example.test", source="127.0.0.9") == "250 2.0.0"
    wait_until(lambda: len(example.messages) == 2, what="bravo's message")
    assert example.messages[-1].rcpt_tos == ("bob@example.test",)

    # other.test comes back; acme's deferred message comes due and is parked, not delivered or bounced.
    other = sinks("other.test")
    wait_until(lambda: "parked" in queue_states(relay).values(), what="the deferred message parked")
    assert customer(relay, "acme")["parked"] == 1
    stats = ctl(relay.env["SMARTHOST_REDIS_URL"], "queue", "stats")
    assert "\nparked     1\n" in stats.stdout, stats.stdout
    wait_until(
        lambda: Scrape(delivery.metrics_port).value("smarthost_reputation_parked_messages") == 1,
        what="the parked gauge",
    )
    assert not other.messages and len(dsns.messages) == 3

    released = ctl(relay.env["SMARTHOST_REDIS_URL"], "customer", "release", "acme")
    assert released.returncode == 0, released
    assert released.stdout == "acme: released; 1 parked message(s) to deliver\n"
    wait_until(lambda: len(other.messages) == 1, what="the parked message delivered")
    assert other.messages[0].rcpt_tos == ("carol@other.test",)
    # The window starts afresh, so the old bounces do not hold acme again at once.
    assert (customer(relay, "acme")["bounced"], customer(relay, "acme")["held"]) == (0, False)
    wait_until(lambda: send(ingress, "bob@example.test") == "250 2.0.0", what="acme accepted again")
    assert len(dsns.messages) == 3


def test_an_operator_holds_and_releases_by_hand(relay: Relay, sinks: Callable[..., SmtpSink]) -> None:
    ingress, _ = start(relay)
    url = relay.env["SMARTHOST_REDIS_URL"]
    assert send(ingress, "carol@other.test") == "250 2.0.0"
    held = ctl(url, "customer", "hold", "acme", "--reason", "abuse report 4711")
    assert held.stdout == "acme: held (abuse report 4711)\n", held
    # Refused at MAIL once the ingress no longer reuses the connection verdict it had.
    wait_until(lambda: mail_reply(ingress).startswith("451"), what="the hold refused at MAIL")
    assert mail_reply(ingress) == "451 4.7.1 Relaying for acme is held (abuse report 4711), try again later"
    # Mail already queued waits, parked, even once its destination is back.
    wait_until(lambda: "parked" in queue_states(relay).values(), what="the deferred message parked")
    other = sinks("other.test")
    stats = ctl(url, "customer", "stats", "acme").stdout
    assert "state:        held by the operator (abuse report 4711), since " in stats
    assert "parked:       1 message(s)\n" in stats
    assert ctl(url, "customer", "hold", "acme", "--reason", "two\nlines").returncode == 2

    assert ctl(url, "customer", "release", "acme").returncode == 0
    wait_until(lambda: len(other.messages) == 1, what="delivery after the release")
    wait_until(lambda: send(ingress, "bob@other.test") == "250 2.0.0", what="acme accepted again")


def test_a_suspended_customer_is_refused_and_its_queued_mail_waits(
    relay: Relay, sinks: Callable[..., SmtpSink]
) -> None:
    example = sinks("example.test")
    ingress, _ = start(relay)
    url = relay.env["SMARTHOST_REDIS_URL"]
    assert send(ingress, "carol@other.test") == "250 2.0.0"
    relay.policy_file.write_text(POLICY.replace("[127.0.0.1/32]", "[127.0.0.1/32]\n    suspended: true"))
    wait_until(lambda: mail_reply(ingress).startswith("451"), what="the suspension refused at MAIL")
    assert mail_reply(ingress) == "451 4.7.1 Relaying for acme is suspended by the provider, try again later"
    assert send(ingress, "bob@example.test", source="127.0.0.9") == "250 2.0.0"
    wait_until(lambda: len(example.messages) == 1, what="bravo's message")

    wait_until(lambda: "parked" in queue_states(relay).values(), what="acme's queued mail parked")
    other = sinks("other.test")
    # A release does not lift a suspension: only the policy does.
    assert "suspended in the policy" in ctl(url, "customer", "release", "acme").stdout
    assert customer(relay, "acme")["suspended"] is True
    relay.policy_file.write_text(POLICY)
    wait_until(lambda: len(other.messages) == 1, timeout=30, what="the parked message delivered")
    assert other.messages[0].rcpt_tos == ("carol@other.test",)
    assert send(ingress, "bob@example.test") == "250 2.0.0"
