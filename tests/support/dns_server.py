"""dnsmasq serving test zones on a free loopback port.

`local=/test/` makes it authoritative for `.test`: unknown names there are
NXDOMAIN and nothing is ever forwarded to the internet.
"""

import shutil
from pathlib import Path

from support.ports import wait_for_port
from support.processes import ProcessGroup


class DnsServer:
    def __init__(self, group: ProcessGroup, conf_dir: Path, records: list[str], port: int) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        conf = conf_dir / f"dnsmasq-{port}.conf"
        conf.write_text("\n".join(["no-resolv", "no-hosts", "local=/test/", *records]) + "\n")
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.process = group.start(
            f"dnsmasq-{port}",
            [
                binary,
                "--keep-in-foreground",
                f"--conf-file={conf}",
                f"--port={port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--pid-file",
                "--log-facility=-",
            ],
        )
        # dnsmasq opens its TCP and UDP sockets together: TCP up means ready.
        wait_for_port("127.0.0.1", port)


def mx(domain: str, host: str, preference: int = 10) -> str:
    return f"mx-host={domain},{host},{preference}"


def a(name: str, address: str) -> str:
    return f"host-record={name},{address}"


def null_mx(domain: str) -> str:
    # dnsmasq cannot write a root target with mx-host: raw MX rdata, pref 0, ".".
    return f"dns-rr={domain},15,000000"


def txt(name: str, strings: list[str]) -> str:
    """A TXT record of one or more character-strings (at most 255 bytes each)."""
    assert all(len(part.encode()) <= 255 and '"' not in part for part in strings)
    return f"txt-record={name}," + ",".join(f'"{part}"' for part in strings)
