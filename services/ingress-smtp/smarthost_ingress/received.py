"""The `Received:` trace header the ingress prepends (RFC 5321 4.4)."""

import ssl
import time
from email.utils import formatdate
from functools import lru_cache
from typing import Any


def tls_description(extra: dict[str, Any] | None) -> str:
    """`(using TLSv1.3 with cipher ... (256/256 bits))` as Postfix writes it; "" without TLS."""
    ssl_object = (extra or {}).get("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return ""
    cipher = ssl_object.cipher()
    if cipher is None:
        return ""
    name, _, bits = cipher
    return f"(using {ssl_object.version()} with cipher {name} ({bits}/{bits} bits))"


def received_header(
    *, helo: str, client_ip: str, hostname: str, queue_id: str, protocol: str, tls: str, recipients: list[str]
) -> bytes:
    # Name the recipient only when there is one, as Postfix does: listing
    # every Bcc recipient would disclose them to all.
    recipient = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
    using = f"\r\n\t{tls}" if tls else ""
    text = (
        f"Received: from {helo} ([{client_ip}]){using}\r\n"
        f"\tby {hostname} (smarthost) with {protocol} id {queue_id}{recipient};\r\n"
        f"\t{_date(int(time.time()))}\r\n"
    )
    # Names and addresses came from the client: never let them carry 8-bit
    # bytes that break the header.
    return text.encode("ascii", errors="replace")


@lru_cache(maxsize=1)
def _date(second: int) -> str:
    """RFC 5322 date of a second, made once per second, not once per message."""
    return formatdate(second, localtime=False, usegmt=True)
