"""Client helpers shared by the ingress tests: swaks as a real client, AUTH PLAIN's initial response."""

import base64
import shutil
import subprocess

from support.ingress_stack import IngressStack

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def swaks(stack: IngressStack, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SWAKS,
            "--server", "127.0.0.1",
            "--port", str(port),
            "--tls", "--tls-verify", "--tls-ca-path", str(stack.ca_file),
            "--ehlo", "customer.test",
            "--from", "alice@sender.test",
            "--to", "bob@example.test",
            "--header", "Subject: from swaks",
            "--body", "Hello from swaks",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
