"""`smarthostctl policy check`: what the policy service would answer a client, stage by stage.

It asks the connection, sender and recipient stages, never the end-of-DATA
one: that stage counts a message against the client's rate limit. The size
is checked as a declared `MAIL FROM ... SIZE=`, against the same limit. The
calls carry a fresh queue id, so the policy's decision lines can be found.
"""

import argparse
import sys
from typing import Any

import grpc
from redis.asyncio import Redis
from smarthost.policy.v1 import policy_pb2 as pb
from smarthost.policy.v1.policy_pb2_grpc import PolicyServiceStub

from smarthost_common.queue import new_queue_id
from smarthost_delivery.ctl.output import common_flags, print_json
from smarthost_delivery.ctl.settings import CtlSettings
from smarthost_delivery.ctl.tables import table


def register(areas: Any) -> None:
    policy = areas.add_parser("policy", help="the policy service").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    check = policy.add_parser(
        "check", parents=[common_flags()], help="ask the policy service about a client, sender and recipients"
    )
    check.add_argument("--client-ip", required=True, help="the client's address, as the ingress sees it")
    check.add_argument("--helo", default="", help="the name the client greets with")
    check.add_argument("--user", default="", help="an SMTP AUTH user (its customer's rules apply)")
    check.add_argument("--sender", help='the MAIL FROM address ("" for the null sender <>)')
    check.add_argument("--recipient", action="append", default=[], help="a RCPT TO address (repeatable)")
    check.add_argument("--size", type=int, default=0, help="the message size in bytes, as SIZE= declares it")
    check.set_defaults(handler=check_policy)


async def check_policy(redis: Redis, args: argparse.Namespace, settings: CtlSettings) -> int:
    """Exit 0 when every stage accepts, 1 when one refuses, 2 when the policy cannot be asked."""
    queue_id = new_queue_id()
    session = pb.Session(client_ip=args.client_ip, helo=args.helo, queue_id=queue_id, auth_user=args.user)
    answers: list[tuple[str, pb.Verdict]] = []
    customer = ""
    async with grpc.aio.insecure_channel(settings.policy_addr) as channel:
        stub = PolicyServiceStub(channel)
        timeout = settings.policy_timeout
        try:
            connection = await stub.CheckConnection(pb.CheckConnectionRequest(session=session), timeout=timeout)
            customer = connection.customer
            answers.append(("connection", connection.verdict))
            if args.sender is not None or args.size:
                sender = pb.CheckSenderRequest(session=session, mail_from=args.sender or "", declared_size=args.size)
                answers.append(("sender", (await stub.CheckSender(sender, timeout=timeout)).verdict))
            for index, recipient in enumerate(args.recipient):
                request = pb.CheckRecipientRequest(
                    session=session, mail_from=args.sender or "", rcpt_to=recipient, accepted_recipients=index
                )
                verdict = (await stub.CheckRecipient(request, timeout=timeout)).verdict
                answers.append((f"recipient {recipient}", verdict))
        except grpc.aio.AioRpcError as exc:
            print(
                f"smarthostctl: policy service at {settings.policy_addr}: {exc.code().name}: {exc.details()}",
                file=sys.stderr,
            )
            return 2
    refused = any(verdict.action != pb.ACTION_ACCEPT for _, verdict in answers)
    if args.json:
        print_json(
            {
                "queue_id": queue_id,
                "customer": customer,
                "accepted": not refused,
                "stages": [{"stage": stage, **_verdict(verdict)} for stage, verdict in answers],
            }
        )
        return 1 if refused else 0
    print(f"customer:  {customer or '-'}")
    print(f"queue id:  {queue_id} (in the policy's decision log lines)")
    rows = [[stage, _verdict(verdict)["action"], _verdict(verdict)["reply"]] for stage, verdict in answers]
    print(table(["STAGE", "VERDICT", "REPLY"], rows))
    return 1 if refused else 0


def _verdict(verdict: pb.Verdict) -> dict[str, str]:
    return {
        "action": pb.Action.Name(verdict.action).removeprefix("ACTION_").lower(),
        "reply": f"{verdict.code} {verdict.enhanced_code} {verdict.text}",
    }
