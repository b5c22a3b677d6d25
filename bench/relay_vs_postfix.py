"""smarthost against Postfix, the reference relay, measured in the same run under the same load.

Everything runs in private network, mount and PID namespaces (`namespace`):
dnsmasq answers the test zone on 127.0.0.1:53 for both relays, Postfix
through glibc and the namespace's own resolv.conf, smarthost through
SMARTHOST_DNS_SERVERS. The load is Postfix's `smtp-source` (SESSIONS
sessions, one message per connection, numbered recipients at the
scenario's destination domains); the destinations are `smtp-sink`s on the
MX addresses. Each scenario runs Postfix, then smarthost in each of its
variants (number of delivery workers, Redis's appendfsync), back to back,
so both see the same machine: every figure is also given as smarthost /
Postfix.

Per phase: accepted msg/s (load start to smtp-source's exit), end-to-end
msg/s (to the last arrival at a sink), CPU per message of every process of
the relay (until its queue is empty), peak RSS and PSS of all of them, and
the latency from the 250 to arrival at the sink of tagged probe messages
sent beside the load (`latency_probe`). Each phase starts after a short
unmeasured warm-up.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import namespace
from harness import ZONE_TTL, until
from postfix_instance import PostfixInstance, postfix_version
from postfix_tools import Sinks, check_exit, smtp_source
from process_meter import ProcessMeter
from results_table import Phase, Scenario, Variant, render
from support.dns_server import DnsServer, a, mx
from support.ports import free_port
from support.processes import ProcessGroup
from support.redis_server import RedisServer
from support.relay import Listener, Relay
from support.standard import MX_HOSTS, STANDARD_ZONE, UNLIMITED_POLICY

from smarthost_common.queue import QUEUE_INDEX

# Two destination domains as in the tests; ten more (MX hosts 127.0.0.21-30) for
# slow destinations where a worker's own concurrency, not the per-destination
# limit (20 for each relay), is the bound.
TWO_DOMAINS = ("example.test", "other.test")
TEN_DOMAINS = tuple(f"d{number:02}.test" for number in range(1, 11))
MX_ADDRESSES = MX_HOSTS | {domain: f"127.0.0.{20 + number}" for number, domain in enumerate(TEN_DOMAINS, 1)}
TEN_DOMAINS_ZONE = [
    record for domain in TEN_DOMAINS for record in (mx(domain, f"mx.{domain}"), a(f"mx.{domain}", MX_ADDRESSES[domain]))
]
SLOW = "slow destinations: MX hosts wait 1 s before answering DATA, 2 KiB messages"

# The fast scenarios run twice (other work on the machine comes and goes); the
# slow ones are bound by concurrency, not CPU, and take most of the run's time.
SCENARIOS = (
    Scenario(
        "2 KiB messages",
        "2 KiB",
        messages=2000,
        size=2 * 1024,
        sink_wait=0,
        variants=(Variant(1), Variant(1, "always")),
        rounds=2,
        destinations=TWO_DOMAINS,
    ),
    Scenario(
        "100 KiB messages",
        "100 KiB",
        messages=1000,
        size=100 * 1024,
        sink_wait=0,
        variants=(Variant(1),),
        rounds=2,
        destinations=TWO_DOMAINS,
    ),
    Scenario(
        SLOW,
        "slow MX",
        messages=800,
        size=2 * 1024,
        sink_wait=1,
        variants=(Variant(1), Variant(2)),
        rounds=1,
        destinations=TWO_DOMAINS,
    ),
    Scenario(
        SLOW,
        "slow MX (10 domains)",
        messages=2000,
        size=2 * 1024,
        sink_wait=1,
        variants=(Variant(1), Variant(2)),
        rounds=1,
        destinations=TEN_DOMAINS,
    ),
)
SESSIONS = 20
WARM_UP = 40
# Every wait of a phase ends within this, or the benchmark fails.
PHASE_TIMEOUT = 240.0
RESULTS = Path(__file__).resolve().parent / "results" / "relay-vs-postfix.md"
PROBE = Path(__file__).resolve().parent / "latency_probe.py"
# BENCH_SCENARIOS="2 KiB,slow MX" runs only those (by label) and prints the
# table without replacing the results file, which holds whole runs only.
ONLY = [label.strip() for label in os.environ.get("BENCH_SCENARIOS", "").split(",") if label.strip()]

# The standard customer, as all of 127.0.0.0/8 (as Postfix's mynetworks), unlimited.
POLICY = UNLIMITED_POLICY.replace("127.0.0.1/32", "127.0.0.0/8")
assert POLICY != UNLIMITED_POLICY, "the standard policy's networks changed; update POLICY"


@dataclass(frozen=True)
class Contender:
    """One relay as a phase sees it: where to send, which processes are its own, when it is idle."""

    relay: str
    variant: str
    address: str
    roots: Callable[[], dict[int, str]]
    drained: Callable[[], bool]


def run_phase(group: ProcessGroup, sinks: Sinks, relay: Contender, scenario: Scenario, tag: str) -> Phase:
    load(group, sinks, relay, scenario, WARM_UP, f"{tag}-warm-up")
    sinks.clear()
    with ProcessMeter(relay.roots()) as meter:
        started = time.time()
        accepted_at, probes = load(group, sinks, relay, scenario, scenario.messages, tag)
        usage = meter.usage()
    total = scenario.messages + len(probes)
    arrived = sinks.arrived()
    assert arrived == total, f"{relay.relay}: {arrived} messages arrived, {total} sent"
    arrivals = sinks.probe_arrivals()
    return Phase(
        relay=relay.relay,
        variant=relay.variant,
        messages=total,
        accept_seconds=accepted_at - started,
        end_to_end_seconds=sinks.last_arrival() - started,
        usage=usage,
        latencies=[arrivals[test_id] - at for test_id, at in probes],
    )


def load(
    group: ProcessGroup, sinks: Sinks, relay: Contender, scenario: Scenario, messages: int, tag: str
) -> tuple[float, list[tuple[str, float]]]:
    """Send `messages` with smtp-source and probes beside them; returns once all arrived and the relay is idle.

    Returns when smtp-source was done, and each probe's id and 250 time.
    """
    before = sinks.arrived()
    sources = [
        smtp_source(
            group,
            f"smtp-source-{tag}-{domain}",
            relay.address,
            sessions=SESSIONS // len(scenario.destinations),
            messages=messages // len(scenario.destinations),
            size=scenario.size,
            recipient=f"bob@{domain}",
        )
        for domain in scenario.destinations
    ]
    with probing(relay.address, scenario, tag) as probes:
        for source in sources:
            check_exit(source, PHASE_TIMEOUT)
        accepted_at = time.time()
    total = messages + len(probes)
    until(lambda: sinks.arrived() - before >= total, f"{relay.relay}: {total} messages arrived", PHASE_TIMEOUT)
    until(relay.drained, f"{relay.relay}: queue empty", PHASE_TIMEOUT)
    return accepted_at, probes


@contextmanager
def probing(address: str, scenario: Scenario, tag: str) -> Iterator[list[tuple[str, float]]]:
    """Latency probes while the block runs; the list fills when it ends."""
    found: list[tuple[str, float]] = []
    argv = [sys.executable, str(PROBE), address, str(scenario.size), tag, *scenario.destinations]
    probe = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield found
        # Closes the probe's standard input first: its signal to stop.
        output, _ = probe.communicate(timeout=60)
        if probe.returncode != 0:
            raise RuntimeError(f"latency probe failed ({probe.returncode})")
        found += [(test_id, float(at)) for test_id, at in (line.split() for line in output.splitlines())]
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()


class Smarthost:
    """Redis, policy and ingress for the whole run; delivery workers per phase."""

    def __init__(self, group: ProcessGroup, workdir: Path, sink_port: int) -> None:
        self.redis = RedisServer(group, workdir / "redis")
        self.relay = Relay(
            group, workdir, redis_url=self.redis.url, dns="127.0.0.1:53", delivery_port=sink_port, policy=POLICY
        )
        # As production runs: per-message DEBUG lines would be measured too.
        self.relay.env["SMARTHOST_LOG_LEVEL"] = "INFO"
        self.policy = self.relay.start_policy()
        self.ingress = self.relay.start_ingress(self.policy)
        self.workers: list[Listener] = []
        self._client = self.redis.client()

    def contender(self, variant: Variant) -> Contender:
        while len(self.workers) > variant.workers:
            self.workers.pop().process.stop()
        while len(self.workers) < variant.workers:
            self.workers.append(self.relay.start_delivery())
        self._client.config_set("appendfsync", variant.appendfsync)
        return Contender("smarthost", variant.name, self.ingress.address, self._roots, self._drained)

    def _roots(self) -> dict[int, str]:
        assert self.redis.process is not None
        roots = {self.ingress.process.pid: "ingress", self.policy.process.pid: "policy"}
        roots |= {worker.process.pid: "delivery" for worker in self.workers}
        return roots | {self.redis.process.pid: "redis-server"}

    def _drained(self) -> bool:
        # A message leaves the index once settled: delivered, bounced or expired.
        return int(self._client.zcard(QUEUE_INDEX)) == 0


def postfix_contender(postfix: PostfixInstance) -> Contender:
    def roots() -> dict[int, str]:
        master = postfix.master_pid()
        assert master is not None, "Postfix is not running"
        return {master: "master"}

    return Contender("Postfix", "", f"127.0.0.1:{postfix.port}", roots, lambda: postfix.queued() == 0)


def main() -> None:
    unknown = set(ONLY) - {scenario.label for scenario in SCENARIOS}
    if unknown:
        sys.exit(f"BENCH_SCENARIOS: no scenario labelled {', '.join(sorted(unknown))}")
    namespace.enter()
    started = time.monotonic()
    load_average = os.getloadavg()[0]
    version = postfix_version()
    namespace.bring_up_loopback()
    with tempfile.TemporaryDirectory(prefix="smarthost-bench-") as tmp:
        workdir = Path(tmp)
        # Postfix's daemons, once they dropped root, must reach their folders below.
        workdir.chmod(0o755)
        namespace.use_resolver(workdir)
        dumps = workdir / "dumps"
        namespace.mount_tmpfs(dumps, "1g")
        group = ProcessGroup(workdir)
        postfix: PostfixInstance | None = None
        try:
            DnsServer(
                group, workdir, [*STANDARD_ZONE, *TEN_DOMAINS_ZONE, a("customer.test", "127.0.0.1"), ZONE_TTL], 53
            )
            sink_port = free_port(*MX_ADDRESSES.values())
            postfix = PostfixInstance(workdir / "postfix", free_port(), sink_port)
            postfix.start()
            smarthost = Smarthost(group, workdir, sink_port)
            results = [
                (scenario, run_scenario(group, dumps, postfix, smarthost, scenario))
                for scenario in SCENARIOS
                if not ONLY or scenario.label in ONLY
            ]
        except BaseException:
            print(group.logs()[-6000:], file=sys.stderr)
            if postfix:
                print(postfix.log_tail(), file=sys.stderr)
            # The temp folder goes with the run; every process's log outlives it.
            kept = Path(tempfile.mkdtemp(prefix="smarthost-bench-logs-"))
            for log in workdir.glob("*.log"):
                shutil.copy(log, kept)
            print(f"logs of every process kept in {kept}", file=sys.stderr)
            raise
        finally:
            group.stop_all()
            if postfix:
                postfix.stop()
            namespace.unmount(dumps)
    table = render(results, version, load_average, time.monotonic() - started, SESSIONS)
    print(table)
    if not ONLY:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(table)
        print(f"(also in {RESULTS})")


def run_scenario(
    group: ProcessGroup, dumps: Path, postfix: PostfixInstance, smarthost: Smarthost, scenario: Scenario
) -> list[Phase]:
    """Postfix, then smarthost with each number of delivery workers, to the same sinks; each one's best round."""
    hosts = [MX_ADDRESSES[domain] for domain in scenario.destinations]
    sinks = Sinks(group, dumps, hosts, postfix.smtp_port, scenario.sink_wait)
    best: list[Phase] = []
    try:
        for round_ in range(scenario.rounds):
            phases = [run_phase(group, sinks, postfix_contender(postfix), scenario, _tag("postfix", scenario, round_))]
            for variant in scenario.variants:
                relay = smarthost.contender(variant)
                tag = _tag(f"smarthost-{variant.workers}-{variant.appendfsync}", scenario, round_)
                phases.append(run_phase(group, sinks, relay, scenario, tag))
            best = (
                [max(pair, key=lambda phase: phase.end_to_end_rate) for pair in zip(best, phases, strict=True)]
                if best
                else phases
            )
    finally:
        sinks.stop()
    print(f"{scenario.title}: done", file=sys.stderr)
    return best


def _tag(relay: str, scenario: Scenario, round_: int) -> str:
    """Names the phase's processes, logs and probe ids: no spaces."""
    return f"{relay}-{scenario.label}-{round_}".replace(" ", "-")


if __name__ == "__main__":
    main()
