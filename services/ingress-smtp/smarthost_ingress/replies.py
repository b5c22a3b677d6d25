"""Policy verdicts as SMTP reply lines."""

import re

from smarthost.policy.v1 import policy_pb2 as pb

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str) -> str:
    """Client-supplied text made safe to echo in a reply or a header."""
    return _UNPRINTABLE.sub("?", text)


def reply(verdict: pb.Verdict) -> str:
    return f"{verdict.code} {verdict.enhanced_code} {printable(verdict.text)}"


def accepted(verdict: pb.Verdict) -> bool:
    return verdict.action == pb.ACTION_ACCEPT


REDIS_UNAVAILABLE = "451 4.3.0 Queue unavailable, try again later"
