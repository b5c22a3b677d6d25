"""Peak memory of the ingress under CLIENTS concurrent transfers of SIZE bytes each.

Three phases in one run, each on a fresh server:

- a plain aiosmtpd server that accepts and discards (the baseline: it holds
  each message whole, as aiosmtpd does);
- the ingress with a DATA budget larger than every transfer together, so all
  of them are in memory at once: its growth per byte in flight is what one
  message costs, content and every copy made on its way to Redis;
- the ingress with the default budget (`SMARTHOST_DATA_MEMORY_LIMIT`): its
  peak is the bound the README documents.

Growth is the peak RSS (VmHWM) after the load minus the peak before it. The
clients declare SIZE= at MAIL, so a transfer waits for room in the budget
(`SMARTHOST_DATA_MEMORY_WAIT`) instead of being refused half-way.
"""

import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import DESTINATIONS, SENDER, ZONE_TTL, start_sink
from support.dns_server import DnsServer
from support.ports import free_port
from support.processes import Process, ProcessGroup
from support.redis_server import RedisServer
from support.relay import Relay
from support.standard import STANDARD_ZONE, UNLIMITED_POLICY

CLIENTS = 20
SIZE = 20 * 1024 * 1024
MiB = 1024 * 1024
# Every phase ends within this, or the benchmark fails.
PHASE_TIMEOUT = 300.0


def message(size: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    header = b"From: Alice <alice@sender.test>\r\nSubject: large\r\n\r\n"
    return header + line * ((size - len(header)) // len(line)) + b".\r\n"


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for {pid}")


async def reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed before a reply")
        if line[3:4] != b"-":
            return int(line[:3])


async def send(port: int, number: int, data: bytes) -> int:
    """One transaction; the final reply's code (or DATA's, when it is not 354)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reply(reader)
        recipient = f"user{number}@{DESTINATIONS[number % len(DESTINATIONS)]}"
        for command in ("EHLO customer.test", f"MAIL FROM:<{SENDER}> SIZE={len(data)}", f"RCPT TO:<{recipient}>"):
            writer.write(command.encode() + b"\r\n")
            if (code := await reply(reader)) != 250:
                raise RuntimeError(f"{command}: {code}")
        writer.write(b"DATA\r\n")
        code = await reply(reader)
        if code == 354:
            writer.write(data)
            await writer.drain()
            code = await reply(reader)
        writer.write(b"QUIT\r\n")
        await reply(reader)
        return code
    finally:
        writer.close()


@dataclass(frozen=True)
class Result:
    label: str
    idle: int
    growth: int
    codes: list[int]

    def row(self) -> str:
        accepted = self.codes.count(250)
        others = " ".join(str(code) for code in self.codes if code != 250) or "-"
        per_message = self.growth / (CLIENTS * SIZE)
        return (
            f"  {self.label:<34}{self.idle / MiB:8.0f} {(self.idle + self.growth) / MiB:8.0f}"
            f" {self.growth / MiB:8.0f} {per_message:9.2f} {accepted:6d}  {others}"
        )


def measure(label: str, process: Process, port: int) -> Result:
    data = message(SIZE)

    async def load() -> list[int]:
        async with asyncio.timeout(PHASE_TIMEOUT):
            return list(await asyncio.gather(*(send(port, number, data) for number in range(CLIENTS))))

    asyncio.run(send_one(port))
    idle = peak_rss(process.pid)
    codes = asyncio.run(load())
    return Result(label, idle, peak_rss(process.pid) - idle, sorted(codes))


async def send_one(port: int) -> None:
    """Warm-up: the code paths, the policy's DNS cache and Redis's connection."""
    if (code := await send(port, 0, message(64 * 1024))) != 250:
        raise RuntimeError(f"warm-up message: {code}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smarthost-bench-") as tmp:
        workdir = Path(tmp)
        group = ProcessGroup(workdir)
        try:
            redis = RedisServer(group, workdir / "redis", extra=("--maxmemory", "4gb"))
            dns = DnsServer(group, workdir, [*STANDARD_ZONE, ZONE_TTL], free_port())
            relay = Relay(
                group, workdir, redis_url=redis.url, dns=dns.address, delivery_port=free_port(), policy=UNLIMITED_POLICY
            )
            relay.env["SMARTHOST_LOG_LEVEL"] = "INFO"
            relay.env["SMARTHOST_QUEUE_MEMORY_MAX"] = str(3 * 1024 * MiB)
            sink_port = free_port()
            sink = start_sink(group, "127.0.0.1", sink_port)
            results = [measure("plain aiosmtpd sink", sink, sink_port)]
            sink.stop()
            policy = relay.start_policy()
            everything = str(4 * CLIENTS * SIZE)
            ingress = relay.start_ingress(policy, SMARTHOST_DATA_MEMORY_LIMIT=everything)
            results.append(measure("ingress, every transfer in memory", ingress.process, ingress.port))
            ingress.process.stop()
            with redis.client() as client:
                client.flushall()
            ingress = relay.start_ingress(policy, SMARTHOST_DATA_MEMORY_WAIT="120s")
            results.append(measure("ingress, default DATA budget", ingress.process, ingress.port))
        except BaseException:
            print(group.logs()[-4000:], file=sys.stderr)
            raise
        finally:
            group.stop_all()

    print(f"peak RSS, {CLIENTS} concurrent transfers of {SIZE // MiB} MiB (MiB; per byte: growth / all bytes sent)")
    print(f"  {'':<34}{'idle':>8} {'peak':>8} {'growth':>8} {'per byte':>9} {'250':>6}  others")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
