"""CPU time and memory of every process of a relay over one benchmark phase, from /proc.

A relay is a set of root processes and all their descendants (Postfix's
master forks smtpd, cleanup, qmgr, smtp, trivial-rewrite... and replaces
them as they reach max_use). The total CPU is exact: utime + stime of every
live process plus cutime + cstime, the time of the children each one has
reaped, before and after. The split by process name comes from samples
every INTERVAL seconds; what a process spent after its last sample, before
it exited, is left as its own row. Memory is the largest sum, over one
sample, of the processes' RSS and PSS (PSS shares a page among the
processes mapping it, so Postfix's many small processes are not counted
once per copy of libc).
"""

import os
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

INTERVAL = 0.2
TICKS = os.sysconf("SC_CLK_TCK")
UNSAMPLED = "exited, after last sample"


@dataclass(frozen=True)
class Usage:
    # CPU seconds per process name, UNSAMPLED included; they add up to the exact total.
    cpu: dict[str, float]
    peak_rss: int  # bytes
    peak_pss: int  # bytes

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())


@dataclass(frozen=True)
class _Stat:
    name: str
    ppid: int
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: children it has waited for


class ProcessMeter:
    """Measures `roots` (pid -> name to report it under) and their descendants, named by their command."""

    def __init__(self, roots: Mapping[int, str]) -> None:
        self._roots = dict(roots)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._peak_rss = self._peak_pss = 0
        self._start_total = 0.0

    def __enter__(self) -> "ProcessMeter":
        stats = self._tree()
        self._first = {pid: stat.own for pid, stat in stats.items()}
        self._start_total = sum(stat.own + stat.reaped for stat in stats.values())
        self._record(stats)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def usage(self) -> Usage:
        """What the processes used since entering; ends the sampling (the phase is over)."""
        self.__exit__()
        stats = self._tree()
        self._record(stats)
        total = sum(stat.own + stat.reaped for stat in stats.values()) - self._start_total
        cpu: dict[str, float] = defaultdict(float)
        for pid, (name, own) in self._last.items():
            cpu[name] += own - self._first.get(pid, 0.0)
        cpu[UNSAMPLED] = max(0.0, total - sum(cpu.values()))
        return Usage(dict(cpu), self._peak_rss, self._peak_pss)

    def _sample_loop(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._record(self._tree())

    def _record(self, stats: dict[int, _Stat]) -> None:
        rss = pss = 0
        for pid, stat in stats.items():
            self._last[pid] = (self._roots.get(pid, stat.name), stat.own)
            process_rss, process_pss = _memory(pid)
            rss += process_rss
            pss += process_pss
        self._peak_rss = max(self._peak_rss, rss)
        self._peak_pss = max(self._peak_pss, pss)

    def _tree(self) -> dict[int, _Stat]:
        """The roots and their descendants, as /proc shows them now."""
        stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
        members = {pid for pid in self._roots if pid in stats}
        frontier = set(members)
        while frontier:
            frontier = {pid for pid, stat in stats.items() if stat.ppid in frontier and pid not in members}
            members |= frontier
        return {pid: stats[pid] for pid in members}


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _stat(pid: int) -> _Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    # Fields from the 3rd of stat(5) on: state, ppid, ... utime (14), stime, cutime, cstime (17).
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) / TICKS for value in fields[11:15])
    return _Stat(name, int(fields[1]), utime + stime, cutime + cstime)


def _memory(pid: int) -> tuple[int, int]:
    """RSS and PSS in bytes (0, 0 for a process gone or a zombie)."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss = int(value.split()[0]) * 1024
            elif key == "Pss":
                pss = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return rss, pss
