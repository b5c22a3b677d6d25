"""A bounded stream of test messages through an SMTP server, several sessions at once.

Each message carries its own id in an `X-Test-Id:` header, so what arrives can
be checked message by message against what was answered 250.
"""

import smtplib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass

# Text, as most mail is: PostgreSQL's TOAST compresses it, as it would real mail.
FILLER = b"".join(b"line %05d of a test message that stands for a real one\r\n" % n for n in range(2000))


@dataclass(frozen=True)
class Message:
    test_id: str
    mail_from: str
    rcpt_to: str


def body(test_id: str, size: int) -> bytes:
    head = f"X-Test-Id: {test_id}\r\nSubject: backlog test {test_id}\r\n\r\n".encode()
    fill = (FILLER * (size // len(FILLER) + 1))[: max(0, size - len(head))]
    return head + fill


def send_all(host: str, port: int, messages: Sequence[Message], size: int, sessions: int) -> dict[str, int]:
    """Reply code of the end of DATA (or of the first refusal) per test id; 0 when the connection failed."""
    shares = [messages[start::sessions] for start in range(sessions)]
    with ThreadPoolExecutor(sessions) as pool:
        results = pool.map(lambda share: _session(host, port, share, size), shares)
    return {test_id: code for result in results for test_id, code in result.items()}


def send_until_accepted(
    host: str, port: int, messages: Sequence[Message], size: int, sessions: int, timeout: float
) -> dict[str, int]:
    """As a client MTA does: what was answered 4xx (or met a broken connection) is sent again a second later.

    Returns how often each test id was refused before its 250; raises on a 5xx or when `timeout` runs out.
    """
    refusals = {message.test_id: 0 for message in messages}
    pending = list(messages)
    deadline = time.monotonic() + timeout
    while pending:
        codes = send_all(host, port, pending, size, sessions)
        permanent = {test_id: code for test_id, code in codes.items() if code >= 500}
        if permanent:
            raise AssertionError(f"permanent refusals: {permanent}")
        pending = [message for message in pending if codes[message.test_id] != 250]
        for message in pending:
            refusals[message.test_id] += 1
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} messages still refused after {timeout}s")
            time.sleep(1)
    return refusals


def _session(host: str, port: int, share: Sequence[Message], size: int) -> dict[str, int]:
    codes: dict[str, int] = {}
    client: smtplib.SMTP | None = None
    for message in share:
        try:
            if client is None:
                client = smtplib.SMTP(host, port, timeout=60)
                client.ehlo("customer.test")
            client.sendmail(message.mail_from, [message.rcpt_to], body(message.test_id, size))
            codes[message.test_id] = 250
        except smtplib.SMTPResponseException as exc:
            codes[message.test_id] = exc.smtp_code
            _reset(client)
        except smtplib.SMTPRecipientsRefused as exc:
            codes[message.test_id] = next(iter(exc.recipients.values()))[0]
            _reset(client)
        except (smtplib.SMTPException, OSError):
            codes[message.test_id] = 0
            client = None
    if client is not None:
        with suppress(smtplib.SMTPException, OSError):
            client.quit()
    return codes


def _reset(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with suppress(smtplib.SMTPException, OSError):
            client.rset()
