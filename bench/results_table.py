"""The figures of a relay-against-Postfix run as markdown: one table per scenario, then CPU by process."""

import os
import time
from dataclasses import dataclass

from harness import percentile
from process_meter import UNSAMPLED, Usage

MIB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    """How smarthost runs in one phase."""

    workers: int  # delivery workers
    appendfsync: str = "everysec"  # Redis's AOF policy; the chart's default is everysec

    @property
    def name(self) -> str:
        name = f"{self.workers} worker" + ("s" if self.workers > 1 else "")
        return name if self.appendfsync == "everysec" else f"{name}, appendfsync {self.appendfsync}"


@dataclass(frozen=True)
class Scenario:
    title: str
    label: str  # a column heading
    messages: int
    size: int  # bytes of body
    sink_wait: int  # seconds each MX waits before answering DATA
    variants: tuple[Variant, ...]  # of smarthost, one phase each
    # Rounds of all its phases, alternating; each relay's best round (end-to-end rate) is kept.
    rounds: int
    destinations: tuple[str, ...]  # recipient domains, the load shared evenly


@dataclass(frozen=True)
class Phase:
    """One relay through one scenario."""

    relay: str  # Postfix or smarthost
    variant: str  # how many smarthost delivery workers; "" for Postfix
    messages: int  # the load and the latency probes
    accept_seconds: float
    end_to_end_seconds: float
    usage: Usage
    latencies: list[float]  # seconds, one per probe

    @property
    def name(self) -> str:
        return f"{self.relay}, {self.variant}" if self.variant else self.relay

    @property
    def end_to_end_rate(self) -> float:
        return self.messages / self.end_to_end_seconds

    def figures(self) -> list[float]:
        """In the order of FIGURES."""
        return [
            self.messages / self.accept_seconds,
            self.end_to_end_rate,
            self.usage.total_cpu / self.messages * 1000,
            percentile(self.latencies, 0.50) * 1000,
            percentile(self.latencies, 0.99) * 1000,
            self.usage.peak_rss / MIB,
            self.usage.peak_pss / MIB,
        ]


# Name and decimals of each figure of Phase.figures.
FIGURES = [
    ("accepted msg/s", 1),
    ("end-to-end msg/s", 1),
    ("CPU ms per message, all processes", 2),
    ("latency 250 to sink, p50 ms", 1),
    ("latency 250 to sink, p99 ms", 1),
    ("peak RSS MiB, all processes", 0),
    ("peak PSS MiB, all processes", 0),
]


def render(
    results: list[tuple[Scenario, list[Phase]]], postfix: str, load_average: float, seconds: float, sessions: int
) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# smarthost against Postfix",
        "",
        f"`make bench`, {when}: {os.cpu_count()} cores (load average {load_average:.1f} at the start: other work",
        f"shares them), Postfix {postfix}, {seconds:.0f} s in all. Load: smtp-source, {sessions} sessions, one",
        "message per connection, one recipient each, shared evenly by the scenario's destination domains.",
        "Latency: tagged probe messages sent one at a time beside the load; below 0 when the sink had a",
        "message before the client read its 250. Ratio: smarthost / Postfix, in the same run (above 1 is",
        "faster for rates, costlier for CPU, latency and memory).",
    ]
    for scenario, phases in results:
        postfix_phase, *ours = phases
        probes = "; ".join(str(len(phase.latencies)) for phase in phases)
        best = f", best of {scenario.rounds} alternating rounds" if scenario.rounds > 1 else ""
        domains = f", {len(scenario.destinations)} destination domains"
        lines += ["", f"## {scenario.title}: {scenario.messages:,} messages{domains}{best}", ""]
        lines += [f"Latency probes: {probes} ({'; '.join(phase.name for phase in phases)}).", ""]
        heading = ["figure", postfix_phase.name]
        for phase in ours:
            heading += [phase.name, "ratio"]
        lines += [_row(heading), _row(["---", *["--:"] * (len(heading) - 1)])]
        base = postfix_phase.figures()
        for index, (name, decimals) in enumerate(FIGURES):
            cells = [name, f"{base[index]:,.{decimals}f}"]
            for phase in ours:
                value = phase.figures()[index]
                # A latency can be 0 or below: the sink had the message before the client read its 250.
                ratio = f"{value / base[index]:.2f}" if value > 0 and base[index] > 0 else "n/a"
                cells += [f"{value:,.{decimals}f}", ratio]
            lines.append(_row(cells))
    lines += _by_process(results)
    return "\n".join(lines) + "\n"


def _by_process(results: list[tuple[Scenario, list[Phase]]]) -> list[str]:
    """CPU ms per message of each process name, one table per relay, one column per phase."""
    lines = ["", "## CPU ms per message, by process", ""]
    lines += [f"'{UNSAMPLED}': CPU of processes that exited between two samples 0.2 s apart.", ""]
    for relay in ("Postfix", "smarthost"):
        columns = [
            (", ".join(filter(None, (scenario.label, phase.variant))), phase)
            for scenario, phases in results
            for phase in phases
            if phase.relay == relay
        ]
        names: dict[str, float] = {}
        for _, phase in columns:
            for name, seconds in phase.usage.cpu.items():
                names[name] = names.get(name, 0.0) + seconds / phase.messages
        ordered = [*sorted((name for name in names if name != UNSAMPLED), key=lambda name: -names[name]), UNSAMPLED]
        lines += [_row([relay, *(label for label, _ in columns)])]
        lines += [_row(["---", *["--:"] * len(columns)])]
        for name in ordered:
            cells = [f"{phase.usage.cpu.get(name, 0.0) / phase.messages * 1000:.3f}" for _, phase in columns]
            lines.append(_row([name, *cells]))
        lines.append("")
    return lines[:-1]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
