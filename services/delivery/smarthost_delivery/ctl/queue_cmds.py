"""`smarthostctl queue ...`: the relay's mailq, postqueue and postsuper."""

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from smarthost.queue.v1.queue_pb2 import Recipient

from smarthost_common.queue import tier_counts
from smarthost_common.settings import ServiceSettings
from smarthost_common.spool import Spool, SpoolError
from smarthost_delivery import queue_admin
from smarthost_delivery.ctl.output import common_flags, print_json
from smarthost_delivery.ctl.tables import age, approx, clip, table, timestamp, until
from smarthost_delivery.queue_admin import QueuedItem

LIST_LIMIT = 1000


def register(areas: Any) -> None:
    common = common_flags()
    queue = areas.add_parser("queue", help="the mail queue").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    queue.add_parser(
        "stats", parents=[common], help="messages ready, in flight, deferred, dead; oldest age; bytes per tier"
    ).set_defaults(handler=stats)
    listing = queue.add_parser("list", parents=[common], help="queued messages, oldest first")
    listing.add_argument("--limit", type=int, default=LIST_LIMIT, help=f"at most this many (default {LIST_LIMIT})")
    listing.set_defaults(handler=list_queue)
    showing = queue.add_parser("show", parents=[common], help="one message: envelope, recipients, headers")
    showing.add_argument("queue_id")
    showing.set_defaults(handler=show)
    retrying = queue.add_parser("retry", parents=[common], help="deliver deferred or dead messages now")
    which = retrying.add_mutually_exclusive_group(required=True)
    which.add_argument("queue_id", nargs="?")
    which.add_argument("--all", action="store_true", help="every deferred and dead message")
    retrying.set_defaults(handler=retry)
    deleting = queue.add_parser("delete", parents=[common], help="remove a message from the queue")
    deleting.add_argument("queue_id")
    deleting.add_argument("--bounce", action="store_true", help="send the sender a DSN for undelivered recipients")
    deleting.set_defaults(handler=delete)


async def stats(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    counts = await queue_admin.counts(redis)
    tiers = await tier_counts(redis)
    spool_rows = spool_size = None
    async with _spool(settings) as spool:
        if spool:
            try:
                spool_rows, spool_size = await spool.usage()
            except SpoolError as exc:
                print(f"smarthostctl: the disk tier did not answer: {exc}", file=sys.stderr)
    if args.json:
        spooled = {"rows": spool_rows, "bytes_on_disk": spool_size} if spool_rows is not None else None
        print_json({**vars(counts), "tiers": vars(tiers), "spool": spooled})
        return 0
    rows = [
        ["ready", str(counts.ready)],
        ["in flight", str(counts.in_flight)],
        ["deferred", str(counts.deferred)],
        ["dead", str(counts.dead)],
        *([["parked", str(counts.parked)]] if counts.parked else []),
        ["total", str(counts.total)],
        ["oldest age", approx(counts.oldest_age_s) if counts.total else "-"],
        ["memory", f"{tiers.memory_messages} messages, {tiers.memory_bytes} bytes (Redis)"],
        ["disk", f"{tiers.disk_messages} messages, {tiers.disk_bytes} bytes (spool)"],
    ]
    if spool_rows is not None:
        rows.append(["spool", f"{spool_rows} rows, {spool_size} bytes on PostgreSQL's disk"])
    print("\n".join(f"{name:<11}{value}" for name, value in rows))
    return 0


@asynccontextmanager
async def _spool(settings: ServiceSettings) -> AsyncIterator[Spool | None]:
    """The disk tier when SMARTHOST_SPOOL_URL names one."""
    url = getattr(settings, "spool_url", None)
    if not url:
        yield None
        return
    spool = Spool(url, max_connections=1)
    await spool.open()
    try:
        yield spool
    finally:
        await spool.close()


async def list_queue(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    items = await queue_admin.list_messages(redis, args.limit)
    if args.json:
        print_json([_item_json(item) for item in items])
        return 0
    if not items:
        print("queue is empty")
        return 0
    headers = ["QUEUE ID", "STATE", "AGE", "SIZE", "SENDER", "RECIPIENTS", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"]
    rows = []
    for item in items:
        record = item.record
        pending = [rcpt for rcpt in record.recipients if not rcpt.done]
        error = next((rcpt.last_error for rcpt in pending if rcpt.last_error), "")
        rows.append(
            [
                record.queue_id,
                item.state,
                age(record.received_at_ms),
                str(item.size),
                f"<{record.mail_from}>",
                ",".join(rcpt.address for rcpt in pending) or "-",
                str(record.attempts),
                until(item.next_attempt_ms) if item.state == "deferred" else "-",
                clip(error, 60) or "-",
            ]
        )
    print(table(headers, rows))
    return 0


async def show(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    async with _spool(settings) as spool:
        try:
            found = await queue_admin.show(redis, spool, args.queue_id)
        except SpoolError as exc:
            print(f"smarthostctl: {args.queue_id}: body not readable: {exc}", file=sys.stderr)
            return 1
    if found is None:
        return _missing(args.queue_id)
    item, body = found
    headers = body.partition(b"\r\n\r\n")[0].decode("utf-8", "replace")
    if args.json:
        print_json({**_item_json(item), "headers": headers})
        return 0
    record = item.record
    fields = [
        ("queue id", record.queue_id),
        ("state", item.state),
        ("arrived", f"{timestamp(record.received_at_ms)} ({age(record.received_at_ms)} ago)"),
        ("sender", f"<{record.mail_from}>"),
        ("customer", record.customer or "-"),
        ("client", f"{record.client_ip or '-'} (helo {record.helo or '-'})"),
        ("size", f"{item.size} bytes"),
        ("attempts", str(record.attempts)),
        ("last attempt", timestamp(record.last_attempt_ms)),
        ("next attempt", timestamp(item.next_attempt_ms) if item.state == "deferred" else "-"),
        ("delay notice", "sent" if record.delay_warned else "-"),
    ]
    print("\n".join(f"{name + ':':<14}{value}" for name, value in fields))
    print("recipients:")
    rows = [
        [rcpt.address, _recipient_state(rcpt), rcpt.remote_mta or "-", rcpt.last_error or "-"]
        for rcpt in record.recipients
    ]
    print(_indent(table(["ADDRESS", "STATE", "REMOTE", "LAST ERROR"], rows)))
    print("headers:")
    print(_indent(headers))
    return 0


async def retry(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    if args.all:
        moved = await queue_admin.retry_all(redis)
        if args.json:
            print_json(moved)
        else:
            for queue_id, where in moved.items():
                print(f"{queue_id}: {where} -> ready")
            print(f"{len(moved)} message(s) queued for delivery now")
        return 0
    where = await queue_admin.retry(redis, args.queue_id)
    if where == "missing":
        return _missing(args.queue_id)
    if args.json:
        print_json({args.queue_id: where})
    elif where == "active":
        print(f"{args.queue_id}: already ready or being delivered")
    else:
        print(f"{args.queue_id}: {where} -> ready")
    return 0


async def delete(redis: Redis, args: argparse.Namespace, settings: ServiceSettings) -> int:
    async with _spool(settings) as spool:
        try:
            existed, dsn_id = await queue_admin.delete(
                redis, spool, args.queue_id, bounce=args.bounce, hostname=settings.hostname
            )
        except SpoolError as exc:
            print(f"smarthostctl: {args.queue_id}: not deleted, the disk tier failed: {exc}", file=sys.stderr)
            return 1
    if not existed:
        return _missing(args.queue_id)
    if args.json:
        print_json({"deleted": args.queue_id, "dsn_queue_id": dsn_id or None})
    else:
        print(f"{args.queue_id}: deleted" + (f", DSN {dsn_id} queued to the sender" if dsn_id else ""))
    return 0


def _item_json(item: QueuedItem) -> dict[str, Any]:
    record = item.record
    return {
        "queue_id": record.queue_id,
        "state": item.state,
        "mail_from": record.mail_from,
        "customer": record.customer,
        "client_ip": record.client_ip,
        "helo": record.helo,
        "received_at_ms": record.received_at_ms,
        "size": item.size,
        "attempts": record.attempts,
        "last_attempt_ms": record.last_attempt_ms,
        "next_attempt_ms": item.next_attempt_ms,
        "delay_warned": record.delay_warned,
        "recipients": [
            {
                "address": rcpt.address,
                "state": _recipient_state(rcpt),
                "remote_mta": rcpt.remote_mta,
                "last_error": rcpt.last_error,
            }
            for rcpt in record.recipients
        ],
    }


def _recipient_state(rcpt: Recipient) -> str:
    if not rcpt.done:
        return "pending"
    return "bounced" if rcpt.bounced else "delivered"


def _missing(queue_id: str) -> int:
    print(f"smarthostctl: no message {queue_id} in the queue", file=sys.stderr)
    return 1


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
