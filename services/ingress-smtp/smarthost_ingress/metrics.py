"""Prometheus metrics of the ingress; labels are small fixed sets, never addresses."""

from prometheus_client import Counter, Gauge

CONNECTIONS = Counter(
    "smarthost_ingress_connections_total", "SMTP connections by listener and outcome", ["listener", "outcome"]
)
SESSIONS = Gauge("smarthost_ingress_sessions_active", "SMTP sessions open now")
MESSAGES = Counter("smarthost_ingress_messages_total", "Ends of DATA by outcome", ["outcome"])
# stage: the command answered (connect for the greeting, session for replies
# the server sends on its own, other for unrecognised lines); class: 2xx..5xx.
REPLIES = Counter("smarthost_ingress_replies_total", "SMTP replies by command and reply class", ["stage", "class"])
POLICY_CALLS = Counter(
    "smarthost_ingress_policy_calls_total",
    "Policy service calls by RPC and result (ok; reused: a kept verdict; or the gRPC status that failed it closed)",
    ["rpc", "result"],
)
NORMALIZED_LINES = Counter(
    "smarthost_ingress_normalized_lines_total", "Message lines whose bare CR, bare LF or NUL were normalized"
)
# after: connect (input before the greeting) or the command whose reply the client did not wait for.
PIPELINING_REFUSALS = Counter(
    "smarthost_ingress_pipelining_refusals_total",
    "Sessions closed because the client sent before a reply it had to wait for",
    ["after"],
)
AUTHENTICATIONS = Counter("smarthost_ingress_authentications_total", "SMTP AUTH attempts by result", ["result"])
STORED = Counter("smarthost_ingress_stored_total", "Messages queued, by the tier that took the body", ["tier"])
NO_STORAGE = Counter(
    "smarthost_ingress_no_storage_total", "452 4.3.1 replies: no queue tier had room, by stage", ["stage"]
)
DKIM_SIGNATURES = Counter(
    "smarthost_ingress_dkim_signatures_total",
    "Accepted messages by DKIM signing result (signed; unsigned: no key for the From: domain; error)",
    ["result"],
)
DATA_MEMORY = Gauge("smarthost_ingress_data_memory_bytes", "Message bytes held in memory by DATA transfers")


def reply_class(line: str) -> str:
    return f"{line[0]}xx" if line[:1] in ("2", "3", "4", "5") else "other"


_CHILDREN: dict[tuple[Counter, tuple[str, ...]], Counter] = {}


def labelled(metric: Counter, *values: str) -> Counter:
    """`metric.labels(*values)`, looked up once: labels() takes a lock and builds its key on each call."""
    key = (metric, values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def count_reply(stage: str, line: str) -> None:
    """Count a reply once: the last line of a multi-line reply (`250-...` lines are not counted)."""
    if line[3:4] != "-":
        labelled(REPLIES, stage, reply_class(line)).inc()
