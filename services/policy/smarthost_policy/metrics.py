"""Prometheus metrics of the policy service.

Labels are bounded sets. `customer` appears only on the two per-customer
counters below, and only holds a name when the operator sets
SMARTHOST_METRICS_CUSTOMER_LABEL=true (one series per customer and verdict:
fine for hundreds of customers, not for hundreds of thousands); otherwise it
is empty and the counters are totals.
"""

from prometheus_client import Counter, Histogram

DECISIONS = Counter("smarthost_policy_decisions_total", "Policy decisions by check and verdict", ["check", "verdict"])
DECISION_DURATION = Histogram(
    "smarthost_policy_decision_duration_seconds",
    "Time to answer one policy call, by SMTP stage (DNS and Redis included)",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MESSAGES = Counter(
    "smarthost_policy_messages_total",
    "End-of-DATA decisions by verdict (customer only with SMARTHOST_METRICS_CUSTOMER_LABEL)",
    ["customer", "verdict"],
)
RATE_LIMITED = Counter(
    "smarthost_policy_rate_limited_total",
    "Messages refused by the rate limit (customer only with SMARTHOST_METRICS_CUSTOMER_LABEL)",
    ["customer"],
)
