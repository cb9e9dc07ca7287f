"""CPU and memory of a whole process tree, sampled from /proc.

The tree is the root pid, its descendants (found through the ppid field of
/proc/<pid>/stat), and every process seen in it before, even after its parent
exits and it is re-parented. CPU seconds count processes that have exited too:
a live process's utime+stime+cutime+cstime includes the children it reaped, and
the last reading of a process whose parent is not in the tree is kept.

Sampling is dense at first (every 0.1 s for DENSE_SECONDS), then every
`interval`. The last row is written at stop() with the final totals, the
same numbers stats.json gives (CPU includes what the kernel counted for
reaped processes after the last sample).

stats.csv columns (one row per sample):
  elapsed_s      seconds since start() (monotonic clock)
  unix_time      wall-clock time of the sample (seconds since the epoch)
  processes      live processes in the tree
  cpu_seconds    CPU (user+system) used by the tree so far
  cpu_cores      CPU used since the previous sample / wall time since it (1.0 = one core busy)
  rss_bytes      sum of the resident set sizes (pages shared between processes count once each)
  pss_bytes      sum of the proportional set sizes (/proc/<pid>/smaps_rollup): a shared page
                 counts once over the tree; empty where the kernel does not provide it
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

from .outputs import write_text
from .stderrlog import write_line

CSV_COLUMNS = (
    "elapsed_s",
    "unix_time",
    "processes",
    "cpu_seconds",
    "cpu_cores",
    "rss_bytes",
    "pss_bytes",
)

DENSE_SECONDS = 2.0
DENSE_INTERVAL = 0.1
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcStat(NamedTuple):
    pid: int
    ppid: int
    start: int  # clock ticks after boot: tells a reused pid from the original
    cpu: float  # seconds: own user+system plus reaped children's
    rss: int  # bytes


def read_stat(pid: int, proc: str = "/proc") -> ProcStat | None:
    """One process's /proc/<pid>/stat, or None when it has gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain ") ".
    fields = data[data.rindex(b")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ProcStat(pid, int(fields[1]), int(fields[19]), ticks / _TICK, int(fields[21]) * _PAGE)


def read_pss(pid: int, proc: str = "/proc") -> int | None:
    """Proportional set size in bytes (Linux 4.14+), or None where unavailable."""
    try:
        with open(f"{proc}/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def scan(proc: str = "/proc") -> dict[int, ProcStat]:
    stats = {}
    for name in os.listdir(proc):
        if name.isdigit():
            stat = read_stat(int(name), proc)
            if stat is not None:
                stats[stat.pid] = stat
    return stats


class Sampler:
    """Samples in a background thread; stop() takes a final sample and returns the summary."""

    def __init__(
        self,
        root_pid: int,
        interval: float = 1.0,
        csv_path: str | os.PathLike[str] | None = None,
        log: Callable[[str], None] | None = None,
        proc: str = "/proc",
        adopter: int | None = None,
    ) -> None:
        self.root_pid = root_pid
        # A child subreaper whose other children are all orphans of the tree.
        self.adopter = adopter
        self.interval = interval
        self.csv_path = csv_path
        self.proc = proc
        self._log = log or write_line
        self._known: dict[int, ProcStat] = {}  # tree members at the last sample
        self._exited_cpu = 0.0
        self._cpu = 0.0
        self._peak_rss = 0
        self._peak_pss: int | None = None
        self._pss_missing = False
        self._peak_processes = 0
        self._samples = 0
        self._last: tuple[float, float] | None = None  # (monotonic, cpu)
        self._started = 0.0
        self._wall = 0.0
        self._own_cpu = 0.0
        self._errors: set[str] = set()
        self._final_cpu = 0.0
        self._peak_cores = 0.0
        self.csv_problem = ""  # why stats.csv is incomplete, for the task's status
        self._csv_file: IO[str] | None = None
        self._csv: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._started = time.monotonic()
        if self.csv_path is not None:
            try:
                self._csv_file = open(self.csv_path, "w", newline="")  # noqa: SIM115
                self._csv = csv.writer(self._csv_file)
                self._csv.writerow(CSV_COLUMNS)
            except OSError as error:
                self._failed(f"cannot write {self.csv_path}: {error}")
        self.sample()
        self._thread = threading.Thread(target=self._run, name="everest-stats", daemon=True)
        self._thread.start()
        return self

    def stop(
        self, final_cpu_seconds: float | None = None, peak_rss_floor: int = 0
    ) -> dict[str, Any]:
        """Final sample (the csv's last row) and summary. final_cpu_seconds: the
        tree's rusage if the caller reaped it; it covers CPU used after the last
        sample. peak_rss_floor: the kernel's peak of the largest reaped process,
        which a short task can reach between two samples."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._final_cpu = final_cpu_seconds or 0.0
        self.sample()
        if self._csv_file is not None:
            try:
                self._csv_file.close()
            except OSError as error:
                self._failed(f"cannot write {self.csv_path}: {error}")
            self._csv_file = None
        summary = self.summary()
        if peak_rss_floor > summary["peak_rss_bytes"]:
            summary["peak_rss_bytes"] = peak_rss_floor
            summary["peak_rss_source"] = "kernel"  # between samples: the chart says so
        return summary

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "peak_rss_bytes": self._peak_rss,
                "peak_pss_bytes": self._peak_pss,
                "cpu_seconds": round(self._cpu, 3),
                "wall_seconds": round(self._wall, 3),
                "utilisation": _ratio(self._cpu, self._wall),
                "samples": self._samples,
                "peak_processes": self._peak_processes,
                "peak_cpu_cores": round(self._peak_cores, 3),
                "peak_rss_source": "samples",
                "interval_seconds": self.interval,
                "sampler_cpu_seconds": round(self._own_cpu, 4),
            }

    def sample(self) -> None:
        """Take one sample now; a failure is logged once and never raised."""
        began = time.thread_time()
        try:
            with self._lock:
                self._sample()
        except Exception as error:
            self._failed(f"sampling failed: {error!r}")
        self._own_cpu += time.thread_time() - began

    def _run(self) -> None:
        while True:
            dense = time.monotonic() - self._started < DENSE_SECONDS
            if self._stop.wait(min(self.interval, DENSE_INTERVAL) if dense else self.interval):
                return
            self.sample()

    def _sample(self) -> None:
        now = time.monotonic()
        tree = self._tree(scan(self.proc))
        # Gone since the last sample: if its parent is still in the tree the parent's
        # cutime/cstime now holds its CPU, otherwise keep its last reading.
        for pid, old in self._known.items():
            if pid not in tree and old.ppid not in tree:
                self._exited_cpu += old.cpu
        self._known = tree
        cpu = max(self._exited_cpu + sum(p.cpu for p in tree.values()), self._final_cpu)
        rss = sum(p.rss for p in tree.values())
        pss = self._pss(tree)
        self._cpu = max(self._cpu, cpu)
        self._peak_rss = max(self._peak_rss, rss)
        if pss is not None:
            self._peak_pss = max(self._peak_pss or 0, pss)
        self._peak_processes = max(self._peak_processes, len(tree))
        self._samples += 1
        self._wall = now - self._started
        cores = 0.0
        if self._last is not None and now > self._last[0]:
            cores = (self._cpu - self._last[1]) / (now - self._last[0])
        self._last = (now, self._cpu)
        self._peak_cores = max(self._peak_cores, round(cores, 3))
        if self._csv is not None:
            try:
                row = (round(self._wall, 3), round(time.time(), 3), len(tree))
                pss_cell = "" if pss is None else pss
                self._csv.writerow((*row, round(self._cpu, 3), round(cores, 3), rss, pss_cell))
                self._csv_file.flush()  # type: ignore[union-attr]
            except (OSError, ValueError) as error:
                self._csv = None
                self._failed(f"cannot write {self.csv_path}: {error}")
                full = getattr(error, "errno", None) in (28, 122)  # ENOSPC, EDQUOT
                self.csv_problem = (
                    "disk full" if full else "write failed"
                ) + ": stats.csv incomplete"

    def _pss(self, tree: dict[int, ProcStat]) -> int | None:
        """The tree's PSS; None when smaps_rollup is missing (a process that ended
        between the scan and this read counts as 0)."""
        if self._pss_missing:
            return None
        total = 0
        for pid in tree:
            value = read_pss(pid, self.proc)
            if value is None and os.path.exists(f"{self.proc}/{pid}"):
                self._pss_missing = not os.path.exists(f"{self.proc}/{pid}/smaps_rollup")
                if self._pss_missing:
                    return None
            total += value or 0
        return total

    def _tree(self, stats: dict[int, ProcStat]) -> dict[int, ProcStat]:
        def same(pid: int) -> bool:
            old = self._known.get(pid)
            return pid in stats and (old is None or old.start == stats[pid].start)

        members = {pid for pid in self._known if same(pid)}
        if self.root_pid in stats:
            members.add(self.root_pid)
        children: dict[int, list[int]] = {}
        for stat in stats.values():
            children.setdefault(stat.ppid, []).append(stat.pid)
        if self.adopter is not None:
            members.update(children.get(self.adopter, ()))
        todo = list(members)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in members:
                    members.add(child)
                    todo.append(child)
        return {pid: stats[pid] for pid in members}

    def _failed(self, message: str) -> None:
        if message not in self._errors:
            self._errors.add(message)
            self._log(f"everest-stats: {message}; carrying on")


def _ratio(cpu: float, wall: float) -> float:
    return round(cpu / wall, 3) if wall > 0 else 0.0


def write_summary(path: str | os.PathLike[str], summary: dict[str, Any]) -> None:
    """stats.json, written to a temporary name then renamed (never half a file)."""
    write_text(Path(path), json.dumps(summary, indent=2, sort_keys=True) + "\n")
