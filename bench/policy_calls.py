"""The policy service's CPU per call, by RPC: what each SMTP stage costs it.

Starts Redis, the standard DNS zone and one policy process as the relay runs
it (INFO logs), then asks each RPC `CALLS` times from `CONCURRENCY` tasks
over one channel, as an ingress does, after a warm-up. The figure is the
policy process's own CPU time (/proc) per call: steadier than a rate on a
shared machine. CheckMessage counts in an unlimited rate window, as
accepted mail does. The baseline is the same process answering gRPC's
standard health check, in the same run: what gRPC itself costs a call, so
each ratio says what the policy's own work adds.
"""

import asyncio
import os
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health_pb2_grpc import HealthStub
from harness import SENDER, cpu_seconds, loopback_world
from smarthost.policy.v1 import policy_pb2 as pb
from smarthost.policy.v1.policy_pb2_grpc import PolicyServiceStub

CALLS = int(os.environ.get("BENCH_CALLS", "3000"))
WARM_UP = 300
CONCURRENCY = 20
ROUNDS = 3
RECIPIENT = "bob@example.test"


def session(n: int) -> pb.Session:
    return pb.Session(client_ip="127.0.0.1", helo="customer.test", queue_id=f"BENCH{n:011d}")


REQUESTS: dict[str, Callable[[int], object]] = {
    "CheckConnection": lambda n: pb.CheckConnectionRequest(session=session(n)),
    "CheckSender": lambda n: pb.CheckSenderRequest(session=session(n), mail_from=SENDER, declared_size=2048),
    "CheckRecipient": lambda n: pb.CheckRecipientRequest(session=session(n), mail_from=SENDER, rcpt_to=RECIPIENT),
    "CheckMessage": lambda n: pb.CheckMessageRequest(
        session=session(n), mail_from=SENDER, rcpt_to=[RECIPIENT], size=2048
    ),
}


BASELINE = "Health.Check"


async def ask(stub: PolicyServiceStub, health: HealthStub, rpc: str, first: int, count: int) -> None:
    numbers = iter(range(first, first + count))

    async def worker() -> None:
        for n in numbers:
            if rpc == BASELINE:
                await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            else:
                await getattr(stub, rpc)(REQUESTS[rpc](n), timeout=10)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def measure(address: str, pid: int) -> dict[str, float]:
    """Milliseconds of policy CPU per call, the best of ROUNDS, per RPC."""
    best: dict[str, float] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub, health = PolicyServiceStub(channel), HealthStub(channel)
        first = 0
        for _ in range(ROUNDS):
            for rpc in [BASELINE, *REQUESTS]:
                await ask(stub, health, rpc, first, WARM_UP)
                before = cpu_seconds(pid)
                await ask(stub, health, rpc, first + WARM_UP, CALLS)
                used = (cpu_seconds(pid) - before) * 1000 / CALLS
                best[rpc] = min(best.get(rpc, used), used)
                first += WARM_UP + CALLS
    return best


def main() -> None:
    with loopback_world() as world:
        policy = world.relay.start_policy()
        figures = asyncio.run(measure(policy.address, policy.process.pid))
    print(f"policy CPU ms per call, best of {ROUNDS} rounds of {CALLS} calls, {CONCURRENCY} at a time\n")
    print(f"| RPC | CPU ms per call | ratio to {BASELINE} |\n| --- | --: | --: |")
    for rpc, ms in figures.items():
        print(f"| {rpc} | {ms:.3f} | {ms / figures[BASELINE]:.2f} |")


if __name__ == "__main__":
    main()
