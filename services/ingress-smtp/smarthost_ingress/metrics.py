"""Prometheus metrics of the ingress; labels are small fixed sets, never addresses."""

from prometheus_client import Counter, Gauge

CONNECTIONS = Counter(
    "smarthost_ingress_connections_total", "SMTP connections by listener and outcome", ["listener", "outcome"]
)
MESSAGES = Counter("smarthost_ingress_messages_total", "Ends of DATA by outcome", ["outcome"])
NORMALIZED_LINES = Counter(
    "smarthost_ingress_normalized_lines_total", "Message lines whose bare CR, bare LF or NUL were normalized"
)
AUTHENTICATIONS = Counter("smarthost_ingress_authentications_total", "SMTP AUTH attempts by result", ["result"])
DATA_MEMORY = Gauge("smarthost_ingress_data_memory_bytes", "Message bytes held in memory by DATA transfers")
