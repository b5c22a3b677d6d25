"""Policy verdicts as SMTP reply lines, and every reply kept valid SMTP."""

import re

from smarthost.policy.v1 import policy_pb2 as pb

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_HAS_ENHANCED = re.compile(r"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_FINAL = re.compile(r"^([245])(\d\d) ?(.*)$", re.DOTALL)

# RFC 3463 codes for the replies aiosmtpd writes itself without one: once
# ENHANCEDSTATUSCODES is advertised every reply must carry one (RFC 2034).
_DEFAULT_ENHANCED = {
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "252": "2.5.0",
    "421": "4.3.2",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.7.0",
    "555": "5.5.4",
}


def printable(text: str) -> str:
    """Client-supplied text made safe to echo in a reply or a header."""
    # Nearly all text is printable ASCII already: checked without the regular expression.
    if text.isascii() and text.isprintable():
        return text
    return _UNPRINTABLE.sub("?", text)


def reply(verdict: pb.Verdict) -> str:
    return f"{verdict.code} {verdict.enhanced_code} {printable(verdict.text)}"


def accepted(verdict: pb.Verdict) -> bool:
    return verdict.action == pb.ACTION_ACCEPT


def normalized(line: str) -> str:
    """One reply line made printable ASCII, with an enhanced status code.

    aiosmtpd echoes client bytes (NUL included) in some of its replies and
    writes most of them without an enhanced code. The greeting, 220 to
    STARTTLS, intermediate 3xx replies and EHLO continuation lines keep their
    form.
    """
    line = printable(line)
    if line[3:4] == "-" or _HAS_ENHANCED.match(line):
        return line
    match = _FINAL.match(line)
    if match is None:
        return line
    code = match.group(1) + match.group(2)
    enhanced = _DEFAULT_ENHANCED.get(code)
    if enhanced is None:
        return line
    return f"{code} {enhanced} {match.group(3)}".rstrip()


REDIS_UNAVAILABLE = "451 4.3.0 Queue unavailable, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TIMEOUT = "421 4.4.2 Timeout exceeded, closing connection"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors, closing connection"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_AUTH_FAILURES = "421 4.7.0 Too many failed authentications, try again later"
NO_MEMORY = "452 4.3.1 Insufficient system storage, try again later"
