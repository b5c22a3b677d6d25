"""The rate limit: exact across replicas, sliding, and failing closed without Redis."""

import smtplib
import time
from concurrent.futures import ThreadPoolExecutor

from support.policy_zone import RECIPIENT, SENDER
from support.redis_server import RedisServer
from support.relay import Listener, Relay
from support.smtp_replies import data_status, status
from support.waiting import wait_until

BODY = b"Subject: rate\r\n\r\nHello.\r\n"


def send(ingress: Listener, sender: str = SENDER) -> str:
    """One whole transaction; the reply to the message (or to whatever refused it first)."""
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
        client.ehlo("customer.test")
        reply = status(client.mail(sender))
        if reply != "250 2.1.0":
            return reply
        reply = status(client.rcpt(RECIPIENT))
        if reply != "250 2.1.5":
            return reply
        return data_status(client, BODY)


def retry_until_accepted(ingress: Listener, timeout: float) -> list[str]:
    """Send until a message gets its 250, as a client's queue would; every reply, in order."""
    replies: list[str] = []

    def accepted() -> bool:
        replies.append(send(ingress))
        return replies[-1] == "250 2.0.0"

    wait_until(accepted, timeout=timeout, what="a 250")
    return replies


def test_limit_is_exact_across_two_ingress_and_two_policy_replicas(
    policy_relay: Relay, redis_server: RedisServer
) -> None:
    policies = [policy_relay.start_policy(), policy_relay.start_policy()]
    ingresses = [policy_relay.start_ingress(policy) for policy in policies]

    with ThreadPoolExecutor(max_workers=20) as pool:
        # Null senders count like any other.
        senders = [SENDER if n % 4 else "" for n in range(200)]
        replies = list(pool.map(lambda n: send(ingresses[n % 2], senders[n]), range(200)))

    assert replies.count("250 2.0.0") == 160, replies
    assert replies.count("450 4.7.1") == 40, replies
    assert redis_server.client().zcard("smarthost:rate:ip:127.0.0.1") == 160


def test_window_slides(policy_relay: Relay) -> None:
    policy_relay.policy_file.write_text(
        "customers:\n  - name: loopback\n    networks: [127.0.0.1/32]\n    rateLimit: {messages: 5, per: 3s}\n"
    )
    ingress = policy_relay.start_ingress(policy_relay.start_policy())

    first = time.monotonic()
    assert [send(ingress) for _ in range(5)] == ["250 2.0.0"] * 5
    assert send(ingress) == "450 4.7.1"
    # Refused attempts are not counted: retrying until the window passes works.
    replies = retry_until_accepted(ingress, timeout=20)
    assert time.monotonic() - first >= 2.5
    assert set(replies[:-1]) <= {"450 4.7.1"}


def test_redis_down_fails_closed_and_service_returns_by_itself(policy_relay: Relay, redis_server: RedisServer) -> None:
    ingress = policy_relay.start_ingress(policy_relay.start_policy())
    assert send(ingress) == "250 2.0.0"

    redis_server.stop()
    started = time.monotonic()
    assert send(ingress) == "451 4.3.0"
    assert time.monotonic() - started < 10

    redis_server.start()
    replies = retry_until_accepted(ingress, timeout=30)
    assert set(replies[:-1]) <= {"451 4.3.0"}


def test_policy_unreachable_fails_closed_and_the_same_session_recovers(policy_relay: Relay) -> None:
    """A client MTA may keep its session for the next message (Postfix's connection cache) and only RSET."""
    policy = policy_relay.start_policy()
    ingress = policy_relay.start_ingress(policy)
    policy.process.stop()
    with smtplib.SMTP(ingress.host, ingress.port, timeout=30) as client:
        client.ehlo("customer.test")
        assert status(client.mail(SENDER)) == "451 4.3.0"
        client.rset()
        policy_relay.start_policy(SMARTHOST_POLICY_LISTEN=policy.address)

        def accepted() -> bool:
            reply = status(client.mail(SENDER))
            client.rset()
            return reply == "250 2.1.0"

        wait_until(accepted, timeout=20, what="the same session accepted again")


def test_a_message_that_could_not_be_queued_is_not_counted(policy_relay: Relay, redis_server: RedisServer) -> None:
    """Counted at the end of DATA, then the enqueue fails (451): the count is taken back."""
    client = redis_server.client()
    # Redis answers the rate limit but refuses the enqueue (the tier counts are of the wrong type).
    client.set("smarthost:queue:tiers", "not a hash")
    ingress = policy_relay.start_ingress(policy_relay.start_policy())

    assert send(ingress) == "451 4.3.0"
    window = "smarthost:rate:ip:127.0.0.1"
    wait_until(lambda: client.zcard(window) == 0, timeout=10, what="the count taken back")

    client.delete("smarthost:queue:tiers")
    assert send(ingress) == "250 2.0.0"
    assert client.zcard(window) == 1
