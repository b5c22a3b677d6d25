"""Redis, DNS and the policy service once per test module, ingress processes on demand.

The ingress tests need no delivery: what the ingress accepted is read back
from the queue in Redis.
"""

from dataclasses import dataclass
from pathlib import Path

import trustme
from smarthost.queue.v1.queue_pb2 import QueuedMessage

from smarthost_common.queue import READY_STREAM, message_key
from support.dns_server import DnsServer, a, mx, null_mx
from support.ports import free_port, wait_for_port
from support.processes import Process, ProcessGroup
from support.redis_server import RedisServer
from support.relay import Listener, Relay, wait_ready

ZONE = [
    mx("example.test", "mx.example.test"),
    a("mx.example.test", "127.0.0.2"),
    mx("other.test", "mx.other.test"),
    a("mx.other.test", "127.0.0.3"),
    mx("sender.test", "mx.sender.test"),
    a("mx.sender.test", "127.0.0.4"),
    null_mx("nullmx.test"),
]
# What tests call the relay: its certificate is for this name.
HOSTNAME = "relay.test"
# Connections from here must carry a PROXY header; 127.0.0.1 is a customer, 127.0.0.9 is not.
TRUSTED_PROXY = "127.0.0.5"
STRANGER = "127.0.0.9"
SUBMISSION_USER = "web1@roaming.test"
SUBMISSION_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Ingress:
    process: Process
    port: int
    submission_port: int
    metrics_port: int


class IngressStack:
    def __init__(self, group: ProcessGroup, workdir: Path, password_hash: str) -> None:
        self.group = group
        self.redis = RedisServer(group, workdir / "redis")
        dns = DnsServer(group, workdir, ZONE, free_port())
        policy = f"""
customers:
  - name: loopback
    networks: [127.0.0.1/32, "::1/128"]
  - name: roaming
    users: [{{name: "{SUBMISSION_USER}", passwordHash: "{password_hash}"}}]
    maxMessageSize: 1000000
"""
        self.relay = Relay(
            group, workdir, redis_url=self.redis.url, dns=dns.address, delivery_port=free_port(), policy=policy
        )
        self.policy: Listener = self.relay.start_policy()
        self.ca = trustme.CA()
        server_cert = self.ca.issue_cert(HOSTNAME, "127.0.0.1")
        self.cert_file = workdir / "tls.crt"
        self.key_file = workdir / "tls.key"
        self.ca_file = workdir / "ca.crt"
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in server_cert.cert_chain_pems))
        server_cert.private_key_pem.write_to_path(str(self.key_file))
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def start_ingress(self, **env: str) -> Ingress:
        """An ingress with STARTTLS, a submission listener and a trusted proxy; `env` overrides."""
        submission_port = free_port()
        listener = self.relay.start_ingress(
            self.policy,
            **{
                "SMARTHOST_HOSTNAME": HOSTNAME,
                "SMARTHOST_TLS_CERT": str(self.cert_file),
                "SMARTHOST_TLS_KEY": str(self.key_file),
                "SMARTHOST_SUBMISSION_LISTEN": f"127.0.0.1:{submission_port}",
                "SMARTHOST_PROXY_TRUSTED": f"{TRUSTED_PROXY}/32",
                "SMARTHOST_AUTH_FAILURE_DELAY": "0.2s",
                "SMARTHOST_AUTH_MAX_FAILURES": "3",
                **env,
            },
        )
        wait_for_port("127.0.0.1", submission_port)
        wait_ready(listener.metrics_port)
        return Ingress(listener.process, listener.port, submission_port, listener.metrics_port)

    def queued(self) -> list[tuple[QueuedMessage, bytes]]:
        """Every message in the queue, oldest first."""
        client = self.redis.client()
        messages = []
        for _, fields in client.xrange(READY_STREAM) or []:
            assert fields is not None
            queue_id = fields[b"id"]
            assert isinstance(queue_id, bytes)
            stored = client.hgetall(message_key(queue_id.decode()))
            record, body = stored[b"record"], stored[b"body"]
            assert isinstance(record, bytes) and isinstance(body, bytes)
            messages.append((QueuedMessage.FromString(record), body))
        return messages

    def clear(self) -> None:
        self.redis.client().flushall()
