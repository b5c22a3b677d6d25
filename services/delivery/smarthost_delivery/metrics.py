"""Prometheus metrics of the delivery worker; labels are bounded sets, never an address or domain."""

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter("smarthost_delivery_attempts_total", "Delivery attempts per recipient by result", ["result"])
BOUNCES = Counter(
    "smarthost_delivery_bounces_total", "Recipients given up on, by bounce_rules.toml category", ["category"]
)
# Accepted by the ingress (or a DSN queued) to accepted by the destination, per recipient.
LATENCY = Histogram(
    "smarthost_delivery_latency_seconds",
    "Time from the message's arrival to its delivery, per delivered recipient",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 5 * 86400),
)
DSNS = Counter("smarthost_delivery_dsns_total", "Delivery status notifications queued, by action", ["action"])
DROPPED = Counter(
    "smarthost_delivery_dropped_total",
    "Messages or recipients dropped without delivery or DSN, by reason (each also logged with its queue id)",
    ["reason"],
)
CONNECTIONS = Counter(
    "smarthost_delivery_connections_total", "SMTP connections used, by whether reused and TLS", ["reused", "tls"]
)
DESTINATION_WAITS = Counter(
    "smarthost_delivery_destination_limit_waits_total", "Transactions that waited for a destination's concurrency slot"
)
CLAIMED = Counter("smarthost_queue_claimed_total", "Stream entries taken over from a worker that stopped answering")
DEAD_LETTERED = Counter("smarthost_queue_dead_lettered_total", "Messages moved to the dead-letter stream")
QUEUE_MESSAGES = Gauge(
    "smarthost_queue_messages", "Messages in the queue by state, as one worker last saw it", ["state"]
)
# Every worker exports the same queue gauges: aggregate them with max, not sum.
OLDEST_AGE = Gauge(
    "smarthost_queue_oldest_message_age_seconds",
    "Age of the oldest queued message (any state), as one worker last saw it",
)
QUEUE_BYTES = Gauge(
    "smarthost_queue_bytes", "Message bytes queued, by the tier holding them (memory: Redis, disk: the spool)", ["tier"]
)
QUEUE_TIER_MESSAGES = Gauge("smarthost_queue_tier_messages", "Queued messages by the tier holding their body", ["tier"])
MOVED_TO_DISK = Counter(
    "smarthost_queue_moved_to_disk_total", "Deferred messages whose body moved from Redis to the spool"
)
SPOOL_ERRORS = Counter(
    "smarthost_queue_spool_errors_total", "Failed calls to the disk tier (PostgreSQL), by operation", ["op"]
)
TRACE_DROPPED = Counter(
    "smarthost_queue_trace_events_dropped_total", "Trace events left out because Redis was near its maxmemory"
)
