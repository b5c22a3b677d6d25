"""The `Received:` trace header the ingress prepends (RFC 5321 4.4)."""

from email.utils import formatdate


def received_header(
    *, helo: str, client_ip: str, hostname: str, queue_id: str, protocol: str, recipients: list[str]
) -> bytes:
    # Name the recipient only when there is one, as Postfix does: listing
    # every Bcc recipient would disclose them to all.
    recipient = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
    text = (
        f"Received: from {helo} ([{client_ip}])\r\n"
        f"\tby {hostname} (smarthost) with {protocol} id {queue_id}{recipient};\r\n"
        f"\t{formatdate(localtime=False, usegmt=True)}\r\n"
    )
    # Names and addresses came from the client: never let them carry 8-bit
    # bytes that break the header.
    return text.encode("ascii", errors="replace")
