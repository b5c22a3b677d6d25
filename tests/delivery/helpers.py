"""Delivery test helpers: the zone, queueing messages directly, smarthostctl, DSN parsing.

Extra destinations (all on the shared MX port):
- backup.test: preference 10 on 127.0.0.5 (nothing listens), 20 on 127.0.0.6.
- internal.test: its MX is on 127.0.0.9, which tests using it do not allow.
- stall.test: 127.0.0.7, for a peer that hangs before answering DATA.
- wire.test: 127.0.0.8, for peers that record raw bytes or speak TLS.
- v6.test: its MX has only an IPv6 address, ::1.
"""

import asyncio
import email
import email.policy
import subprocess
import time
from email.message import EmailMessage, Message

from redis.asyncio import Redis
from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient
from support.dns_server import a, mx, null_mx
from support.redis_server import RedisServer
from support.relay import BIN

from smarthost_common.queue import enqueue, new_queue_id

HOSTS = {
    "example.test": "127.0.0.2",
    "other.test": "127.0.0.3",
    "sender.test": "127.0.0.4",
    "backup-primary": "127.0.0.5",
    "backup.test": "127.0.0.6",
    "stall.test": "127.0.0.7",
    "wire.test": "127.0.0.8",
    "internal.test": "127.0.0.9",
    "v6.test": "::1",
}

ZONE = [
    *(
        record
        for domain in (
            "example.test",
            "other.test",
            "sender.test",
            "stall.test",
            "wire.test",
            "internal.test",
            "v6.test",
        )
        for record in (mx(domain, f"mx.{domain}"), a(f"mx.{domain}", HOSTS[domain]))
    ),
    null_mx("nullmx.test"),
    mx("backup.test", "mx1.backup.test", 10),
    a("mx1.backup.test", HOSTS["backup-primary"]),
    mx("backup.test", "mx2.backup.test", 20),
    a("mx2.backup.test", HOSTS["backup.test"]),
]

# Every loopback address above except the internal MX's: what tests allow by default.
ALLOW_ALL_BUT_INTERNAL = "127.0.0.1/32,127.0.0.2/31,127.0.0.4/30,127.0.0.8/32"

BODY = (
    b"From: Alice <alice@sender.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: delivery test\r\n"
    b"Message-ID: <test-1@sender.test>\r\n"
    b"\r\n"
    b"Hello,\r\n"
)


def put(redis_url: str, mail_from: str, recipients: list[str], body: bytes = BODY) -> str:
    """Queue a message as the ingress does; returns its queue id."""
    return put_many(redis_url, [(mail_from, recipients, body)])[0]


def put_many(redis_url: str, messages: list[tuple[str, list[str], bytes]]) -> list[str]:
    async def run() -> list[str]:
        redis = Redis.from_url(redis_url)
        ids = []
        try:
            for mail_from, recipients, body in messages:
                record = QueuedMessage(
                    queue_id=new_queue_id(),
                    mail_from=mail_from,
                    recipients=[Recipient(address=rcpt) for rcpt in recipients],
                    client_ip="127.0.0.1",
                    helo="customer.test",
                    customer="loopback",
                    received_at_ms=int(time.time() * 1000),
                )
                await enqueue(redis, record, body, memory_max=0)
                ids.append(record.queue_id)
        finally:
            await redis.aclose()
        return ids

    return asyncio.run(run())


def queue_is_empty(redis_server: RedisServer) -> bool:
    client = redis_server.client()
    try:
        return not client.keys("smarthost:msg:*") and not client.zcard("smarthost:queue:index")
    finally:
        client.close()


def ctl(redis_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """smarthostctl with only the given settings (`env`: more SMARTHOST_* variables)."""
    return subprocess.run(
        [str(BIN / "smarthostctl"), *args],
        env={"SMARTHOST_REDIS_URL": redis_url, "SMARTHOST_HOSTNAME": "relay.test", "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def report_parts(dsn: EmailMessage) -> tuple[str, list[Message], str]:
    """The human text, the delivery-status blocks and the returned headers of a DSN."""
    parts = dsn.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    human, status, headers = parts
    assert isinstance(human, EmailMessage) and isinstance(status, EmailMessage) and isinstance(headers, EmailMessage)
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    text, blocks, returned = human.get_content(), status.get_payload(), headers.get_payload()
    assert isinstance(text, str) and isinstance(blocks, list) and isinstance(returned, str)
    return text, [block for block in blocks if isinstance(block, Message)], returned


# Delivery settings that make tests fast: short retries, quick takeover of a dead worker's entries.
FAST = {
    "SMARTHOST_RETRY_SCHEDULE": "1s",
    "SMARTHOST_CLAIM_IDLE": "2s",
    "SMARTHOST_DELIVERY_TIMEOUT": "20s",
    "SMARTHOST_DELIVERY_CONNECT_TIMEOUT": "5s",
}
