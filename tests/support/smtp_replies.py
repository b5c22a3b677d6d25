"""SMTP replies as the contract names them: "550 5.1.8"."""

import smtplib


def status(response: tuple[int, bytes]) -> str:
    """`(550, b"5.1.8 Sender address rejected...")` as "550 5.1.8"."""
    code, text = response
    words = text.decode(errors="replace").split()
    return f"{code} {words[0]}" if words else str(code)


def data_status(client: smtplib.SMTP, body: bytes) -> str:
    """The reply to DATA: to the command itself when refused, else to the message."""
    code, text = client.docmd("DATA")
    if code != 354:
        return status((code, text))
    client.send(body + b"\r\n.\r\n")
    return status(client.getreply())
