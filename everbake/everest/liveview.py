"""The compact live view of running jobs: one row per job (name, state, elapsed,
last status). On a terminal the rows are redrawn in place; anywhere else (CI logs,
pipes) each change is one plain line, so logs stay readable."""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from everbake.everest.sweepstate import Open
from everbake.everest.watch import Tracker, format_elapsed


@dataclass(frozen=True)
class Row:
    name: str
    tracker: Tracker
    note: str = ""  # e.g. "retry 1/2"

    def cells(self, now: float) -> tuple[str, str, str, str]:
        status = self.tracker.last_status
        if self.note:
            status = f"[{self.note}] {status}".rstrip()
        return (self.name, self.tracker.state, format_elapsed(self.tracker.elapsed(now)), status)


class LiveView:
    def __init__(self, out: TextIO | None = None, tty: bool | None = None):
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self._drawn = 0
        self._seen: dict[str, tuple[str, str, str]] = {}
        self._last_draw = 0.0

    def show(self, rows: Sequence[Row], force: bool = False) -> None:
        if self.tty:
            self._redraw(rows, force)
        else:
            self._lines(rows)

    def _lines(self, rows: Sequence[Row]) -> None:
        now = time.time()
        for row in rows:
            name, state, elapsed, status = row.cells(now)
            key = (state, status, row.tracker.job_id)
            if self._seen.get(name) != key:
                self._seen[name] = key
                tail = f"  {status}" if status else ""
                print(f"{name}  {row.tracker.job_id}  {state}  {elapsed}{tail}", file=self.out)
        self.out.flush()

    def _redraw(self, rows: Sequence[Row], force: bool) -> None:
        now = time.time()
        if not force and now - self._last_draw < 0.25:
            return
        self._last_draw = now
        size = shutil.get_terminal_size((100, 24))
        width = size.columns
        table = [row.cells(now) for row in _fit(rows, max(3, size.lines - 2))]
        name_w = max((len(t[0]) for t in table), default=4)
        lines = []
        for name, state, elapsed, status in table:
            line = f"{name:<{name_w}}  {state:<9}  {elapsed:>7}  {status}"
            lines.append(line[: width - 1])
        # Cursor to the first line drawn last time, clear to the end, draw again.
        prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.out.write(prefix + "".join(line + "\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)


def _fit(rows: Sequence[Row], most: int) -> list[Row]:
    """At most ``most`` rows (the cursor cannot climb above the screen): the jobs
    still going first, then a count of the ended ones in place of the rest."""
    if len(rows) <= most:
        return list(rows)
    going = [r for r in rows if not r.tracker.done][: most - 1]
    counts: dict[str, int] = {}
    for r in rows:
        if r.tracker.done:
            counts[r.tracker.state] = counts.get(r.tracker.state, 0) + 1
    hidden = len(rows) - len(going)
    text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    summary = Tracker(job_id="", state="ended", statuses=[f"{hidden} more: {text}"])
    return [*going, Row("...", summary)]


SLOWEST = 5  # running jobs shown, longest first
RECENT_FAILURES = 5
PLAIN_EVERY_SECONDS = 10.0  # off a terminal: one progress line this often


@dataclass
class ViewState:
    """What the sweep's view shows; kept up to date by the sweep, never rebuilt
    from all its variations (counts are incremented as jobs end)."""

    total: int
    outcomes: dict[str, int]  # final variations by outcome
    running: Collection[Open] = ()  # the attempts followed (at most --max-parallel)
    failures: deque[tuple[str, str, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_FAILURES)
    )  # (variation, outcome, status)
    resubmitted: int = 0
    fetching: int = 0
    files: int = 0
    bytes: int = 0
    requests: int = 0
    rate: float = 0.0
    elapsed: float = 0.0

    @property
    def ended(self) -> int:
        return sum(self.outcomes.values())

    def headline(self) -> str:
        parts = [f"{state} {n}" for state, n in sorted(self.outcomes.items())]
        counts = f" ({', '.join(parts)})" if parts else ""
        resub = f", {self.resubmitted} resubmitted" if self.resubmitted else ""
        return (
            f"sweep: {self.ended}/{self.total} ended{counts}{resub}; "
            f"{len(self.running)} running, {self.total - self.ended - len(self.running)} to go"
        )

    def traffic(self) -> str:
        return (
            f"requests {self.requests} (budget {self.rate:g}/s); "
            f"downloads {self.files} files, {_mb(self.bytes)}, {self.fetching} in flight; "
            f"{format_elapsed(self.elapsed)}"
        )


class SweepView:
    """The sweep's compact view, the same at 10 or 10,000 jobs: counts per outcome,
    traffic and downloads in one line, the slowest running jobs and the last
    failures. Redrawn in place on a terminal; elsewhere one progress line every
    PLAIN_EVERY_SECONDS and one line per failure."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None):
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self._drawn = 0
        self._last = 0.0
        self._failures_said = 0
        self._said = ""

    def show(self, vs: ViewState, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self._last >= 0.25:
                self._last = now
                self._redraw(self.lines(vs, now))
            return
        for label, outcome, status in list(vs.failures)[self._new_failures(vs) :]:
            print(f"{label}: {outcome}  {status}".rstrip(), file=self.out)
        head = vs.headline()
        if force or (now - self._last >= PLAIN_EVERY_SECONDS and head != self._said):
            self._last, self._said = now, head
            print(f"{head}; {vs.traffic()}", file=self.out)
        self.out.flush()

    def _new_failures(self, vs: ViewState) -> int:
        total = vs.ended - vs.outcomes.get("DONE", 0)
        fresh = min(total - self._failures_said, len(vs.failures))
        self._failures_said = total
        return len(vs.failures) - fresh

    def lines(self, vs: ViewState, now: float) -> list[str]:
        lines = [vs.headline(), vs.traffic()]
        wall = time.time()
        running = sorted(vs.running, key=lambda a: a.submitted_at or a.started)[:SLOWEST]
        if running:
            lines.append("slowest running:")
            for a in running:
                took = format_elapsed(wall - (a.submitted_at or a.started))
                status = f"  {a.last_live}" if a.last_live else ""
                lines.append(f"  {a.label}  {a.state or '-'}  {took}  {a.job_id}{status}")
        if vs.failures:
            lines.append("recent failures:")
            lines += [f"  {label}: {outcome}  {status}" for label, outcome, status in vs.failures]
        return lines

    def _redraw(self, lines: list[str]) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.out.write(prefix + "".join(line[: width - 1] + "\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self._drawn = 0  # what is drawn stays; later output goes below it


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
