"""Delivery status notifications (RFC 3464) back to the envelope sender.

A DSN is an ordinary queued message from `<>`: it is delivered, retried and
expired like any other, and never answered by another DSN.
"""

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate
from typing import Literal

from smarthost.queue.v1.queue_pb2 import QueuedMessage, Recipient

from smarthost_common.durations import format_duration
from smarthost_common.queue import new_queue_id
from smarthost_delivery.classify import classify

Action = Literal["failed", "delayed"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
SUBJECTS = {"failed": "Undelivered Mail Returned to Sender", "delayed": "Delayed Mail (still being retried)"}
# A remote reply is quoted into header fields: keep it on one short line.
_MAX_DIAGNOSTIC = 500


@dataclass(frozen=True)
class Report:
    action: Action
    recipients: list[Recipient]
    # Why the relay stopped trying, for the human part (e.g. "the queue lifetime of 5d passed").
    reason: str = ""
    # Delay notices only: when the relay gives up.
    retry_until_ms: int = 0


def build_dsn(original: QueuedMessage, body: bytes, report: Report, hostname: str) -> tuple[QueuedMessage, bytes]:
    """The DSN's queue record and bytes, addressed from `<>` to the original sender."""
    now = time.time()
    queue_id = new_queue_id()
    boundary = f"{queue_id}/{hostname}/{secrets.token_hex(4)}"
    subject = (
        "Undelivered Mail Returned to Sender" if report.action == "failed" else "Delayed Mail (still being retried)"
    )
    human = _human_part(original, report, hostname, now)
    status = _status_part(original, report, hostname)
    headers = _original_headers(body)
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{original.mail_from}>",
        f"Subject: {subject}",
        f"Date: {formatdate(now, localtime=False)}",
        f"Message-ID: <{queue_id}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {_encoding(human)}",
        "",
        human,
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        f"Content-Transfer-Encoding: {_encoding(status)}",
        "",
        status,
        f"--{boundary}",
        "Content-Description: Undelivered Message Headers",
        "Content-Type: text/rfc822-headers",
        f"Content-Transfer-Encoding: {'7bit' if headers.isascii() else '8bit'}",
        "",
    ]
    data = "\r\n".join(lines).encode() + b"\r\n" + headers + f"\r\n--{boundary}--\r\n".encode()
    record = QueuedMessage(
        queue_id=queue_id,
        mail_from="",
        recipients=[Recipient(address=original.mail_from)],
        customer=original.customer,
        received_at_ms=int(now * 1000),
    )
    return record, data


def _human_part(original: QueuedMessage, report: Report, hostname: str, now: float) -> str:
    if report.action == "failed":
        intro = [
            f"This is the mail system at host {hostname}.",
            "",
            "Your message could not be delivered to one or more recipients.",
            *([f"The mail system gave up because {report.reason}."] if report.reason else []),
            "The message is no longer queued; the recipients below will not receive it.",
        ]
    else:
        waited = format_duration(round(now - original.received_at_ms / 1000))
        until = format_datetime(datetime.fromtimestamp(report.retry_until_ms / 1000, UTC))
        intro = [
            f"This is the mail system at host {hostname}.",
            "",
            f"Your message has not been delivered to one or more recipients for {waited}.",
            f"The mail system keeps trying until {until}; you do not need to send it again.",
        ]
    lines = [*intro, "", f"Queue ID: {original.queue_id}", ""]
    for rcpt in report.recipients:
        where = f"host {rcpt.remote_mta} said: " if rcpt.remote_mta else ""
        lines.append(f"<{rcpt.address}>: {where}{_one_line(rcpt.last_error)}")
        lines.append(f"    ({classify(rcpt.last_error).explanation})")
    return "\r\n".join(lines) + "\r\n"


def _status_part(original: QueuedMessage, report: Report, hostname: str) -> str:
    blocks = [
        [
            f"Reporting-MTA: dns; {hostname}",
            f"X-Smarthost-Queue-ID: {original.queue_id}",
            f"Arrival-Date: {_date(original.received_at_ms)}",
        ]
    ]
    for rcpt in report.recipients:
        reply = _one_line(rcpt.last_error)
        block = [
            f"Final-Recipient: {'rfc822' if rcpt.address.isascii() else 'utf-8'}; {rcpt.address}",
            f"Action: {report.action}",
            f"Status: {classify(rcpt.last_error).status}",
        ]
        if rcpt.remote_mta:
            # Only the name: the address in brackets is not a dns-type name.
            block.append(f"Remote-MTA: dns; {rcpt.remote_mta.split(' ')[0]}")
        block.append(f"Diagnostic-Code: {'smtp' if rcpt.remote_mta else 'X-Smarthost'}; {reply}")
        if original.last_attempt_ms:
            block.append(f"Last-Attempt-Date: {_date(original.last_attempt_ms)}")
        if report.action == "delayed":
            block.append(f"Will-Retry-Until: {_date(report.retry_until_ms)}")
        blocks.append(block)
    return "\r\n\r\n".join("\r\n".join(block) for block in blocks) + "\r\n"


def _original_headers(body: bytes) -> bytes:
    """The header section of the original message, line endings made CRLF."""
    header, _, _ = re.sub(rb"\r\n|\r|\n", b"\r\n", body).partition(b"\r\n\r\n")
    return header + b"\r\n"


def _one_line(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= _MAX_DIAGNOSTIC else text[: _MAX_DIAGNOSTIC - 3] + "..."


def _date(ms: int) -> str:
    return formatdate(ms / 1000, localtime=False)


def _encoding(text: str) -> str:
    return "7bit" if text.isascii() else "8bit"
