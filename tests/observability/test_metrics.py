"""Each service's /metrics parses as Prometheus parses it, and its counters equal what the run did."""

import urllib.request

from observability.conftest import Run


def test_ingress_counts_sessions_messages_and_replies(run: Run) -> None:
    ingress = run.metrics["ingress"]
    # Four SMTP sessions, plus the connection that waited for the listener at start-up (greeted, then closed).
    assert ingress.by("smarthost_ingress_connections_total", "outcome") == {"accepted": 5}
    assert ingress.by("smarthost_ingress_messages_total", "outcome") == {"queued": 3}
    replies = {
        (stage, reply_class): ingress.value("smarthost_ingress_replies_total", stage=stage, **{"class": reply_class})
        for stage, reply_class in [
            ("connect", "2xx"), ("ehlo", "2xx"), ("mail", "2xx"), ("mail", "5xx"), ("rcpt", "2xx"),
            ("rcpt", "5xx"), ("data", "3xx"), ("data", "2xx"), ("quit", "2xx"),
        ]
    }  # fmt: skip
    assert replies == {
        ("connect", "2xx"): 5,
        ("ehlo", "2xx"): 4,
        ("mail", "2xx"): 3,
        ("mail", "5xx"): 1,
        ("rcpt", "2xx"): 3,
        ("rcpt", "5xx"): 1,
        ("data", "3xx"): 3,
        ("data", "2xx"): 3,
        ("quit", "2xx"): 4,
    }
    assert ingress.value("smarthost_ingress_replies_total") == 27
    assert ingress.by("smarthost_ingress_policy_calls_total", "rpc") == {
        "CheckConnection": 4,
        "CheckSender": 3,
        "CheckRecipient": 4,
        "CheckMessage": 3,
    }
    # The stranger's connection verdict and the first message's were asked; the
    # two later messages reused the connection, sender and recipient verdicts.
    assert ingress.by("smarthost_ingress_policy_calls_total", "result") == {"ok": 8, "reused": 6}
    assert ingress.value("smarthost_ingress_sessions_active") == 0


def test_policy_counts_decisions_latency_and_dns(run: Run) -> None:
    policy = run.metrics["policy"]
    decisions = {
        (dict(labels)["check"], dict(labels)["verdict"]): value
        for (name, labels), value in policy.samples.items()
        if name == "smarthost_policy_decisions_total"
    }
    assert decisions == {
        ("network", "accept"): 1,
        ("network", "reject"): 1,
        ("sender", "accept"): 1,
        ("recipient", "accept"): 1,
        ("recipient-domain", "reject"): 1,
        ("message", "accept"): 3,
    }
    assert policy.by("smarthost_policy_decision_duration_seconds_count", "stage") == {
        "connection": 2,
        "sender": 1,
        "recipient": 2,
        "message": 3,
    }
    assert policy.families["smarthost_policy_decision_duration_seconds"] == "histogram"
    # No customer label unless the operator turns it on.
    assert policy.by("smarthost_policy_messages_total", "customer") == {"": 3}
    assert policy.value("smarthost_policy_rate_limited_total") == 0
    # Questions asked: sender.test and example.test once each (MX, then the MX host's A), nullmx.test once.
    lookups = policy.by("smarthost_policy_dns_lookups_total", "result")
    assert lookups.keys() <= {"answer"}
    assert lookups["answer"] + policy.value("smarthost_policy_dns_cache_hits_total") == 5


def test_delivery_counts_attempts_latency_bounces_and_the_queue(run: Run) -> None:
    delivery = run.metrics["delivery"]
    # bob, later@ at its second attempt, and the DSN to alice; later@ once deferred; nobody@ bounced.
    assert delivery.by("smarthost_delivery_attempts_total", "result") == {"delivered": 3, "deferred": 1, "bounced": 1}
    assert delivery.value("smarthost_delivery_latency_seconds_count") == 3
    assert delivery.value("smarthost_delivery_latency_seconds_bucket", le="+Inf") == 3
    assert delivery.by("smarthost_delivery_bounces_total", "category") == {"mailbox_unknown": 1}
    assert delivery.by("smarthost_delivery_dsns_total", "action") == {"failed": 1}
    assert delivery.value("smarthost_queue_dead_lettered_total") == 0
    assert delivery.value("smarthost_delivery_dropped_total") == 0
    states = ("ready", "in_flight", "deferred", "dead")
    assert {state: delivery.value("smarthost_queue_messages", state=state) for state in states} == dict.fromkeys(
        states, 0
    )
    assert delivery.value("smarthost_queue_oldest_message_age_seconds") == 0


def test_probes_answer_beside_the_metrics(run: Run) -> None:
    for listener in (run.policy, run.ingress, run.delivery):
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{listener.metrics_port}{path}", timeout=5) as response:
                assert (response.status, response.read()) == (200, b"ok\n")
