"""Tagged messages sent beside the load, each with the time its 250 came: one end of the latency.

Run as its own process (`python latency_probe.py HOST:PORT SIZE ID-PREFIX
DOMAIN...`) so that no benchmark thread delays it. It sends one message per
connection, one after the other, every INTERVAL seconds, each with an
`X-Test-Id` header, until its standard input is closed (the load is over) or
it has sent MAX_PROBES. On exit it prints one line per accepted message:
the id and the wall-clock time (seconds) at which the 250 to its DATA came.
The sink's arrival time of the same id is the other end.
"""

import select
import smtplib
import sys
import time

INTERVAL = 0.05
MAX_PROBES = 400
MAX_SECONDS = 300.0
SENDER = "alice@sender.test"


def message(test_id: str, recipient: str, size: int) -> bytes:
    header = (
        f"From: Alice <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: latency probe\r\n"
        f"Message-ID: <{test_id}@sender.test>\r\nX-Test-Id: {test_id}\r\n\r\n"
    ).encode()
    line = b"y" * 76 + b"\r\n"
    return header + line * max(1, (size - len(header)) // len(line))


def main() -> None:
    address, size, prefix, *domains = sys.argv[1:]
    host, _, port = address.rpartition(":")
    accepted: list[tuple[str, float]] = []
    deadline = time.monotonic() + MAX_SECONDS
    for number in range(MAX_PROBES):
        test_id = f"{prefix}-{number}"
        recipient = f"probe{number}@{domains[number % len(domains)]}"
        with smtplib.SMTP(host, int(port), local_hostname="customer.test", timeout=30) as client:
            # Raises on a refusal: a refused probe fails the benchmark.
            client.sendmail(SENDER, [recipient], message(test_id, recipient, int(size)))
            accepted.append((test_id, time.time()))
        # Standard input readable means closed: the load is over.
        if time.monotonic() > deadline or select.select([sys.stdin], [], [], INTERVAL)[0]:
            break
    for test_id, at in accepted:
        print(test_id, f"{at:.6f}")


if __name__ == "__main__":
    main()
