"""Rate-limit refusals per customer: named on the metric only when the operator says so, always in Redis."""

import json
import smtplib
import subprocess

import pytest
from delivery.helpers import ctl
from support.relay import BIN, Relay
from support.scrape import Scrape

ONE_PER_HOUR = """
defaults:
  rateLimit: {messages: 1, per: 1h}
customers:
  - name: acme
    networks: [127.0.0.1/32]
"""


def send(host: str, port: int) -> int:
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.ehlo("acme.test")
        client.mail("alice@sender.test")
        client.rcpt("bob@example.test")
        return client.data(b"Subject: limit\r\n\r\nHello\r\n")[0]


def test_rate_limit_refusals_name_the_customer_when_asked(relay: Relay) -> None:
    relay.policy_file.write_text(ONE_PER_HOUR)
    policy = relay.start_policy(SMARTHOST_METRICS_CUSTOMER_LABEL="true")
    ingress = relay.start_ingress(policy)

    assert [send(ingress.host, ingress.port) for _ in range(3)] == [250, 450, 450]

    metrics = Scrape(policy.metrics_port)
    assert metrics.by("smarthost_policy_rate_limited_total", "customer") == {"acme": 2}
    assert metrics.value("smarthost_policy_messages_total", customer="acme", verdict="accept") == 1
    assert metrics.value("smarthost_policy_messages_total", customer="acme", verdict="tempfail") == 2
    stats = json.loads(ctl(relay.env["SMARTHOST_REDIS_URL"], "customer", "stats", "acme", "--json").stdout)
    assert (stats["accepted"], stats["refused"], stats["rate_limited"], stats["window_used"]) == (1, 2, 2, 1)
    assert stats["senders"] == [{"sender": "ip:127.0.0.1", "used": 1, "limit": 1, "window_s": 3600.0}]


@pytest.mark.parametrize(
    ("script", "variable", "value"),
    [
        ("smarthost-policy", "SMARTHOST_METRICS_CUSTOMER_LABEL", "sometimes"),
        ("smarthost-delivery", "SMARTHOST_QUEUE_METRICS_INTERVAL", "0s"),
    ],
)
def test_bad_observability_settings_stop_start_up_naming_them(script: str, variable: str, value: str) -> None:
    result = subprocess.run(
        [str(BIN / script)],
        env={"PATH": "/usr/bin:/bin", "SMARTHOST_METRICS_LISTEN": "127.0.0.1:0", variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"configuration error: {variable}:" in result.stderr
