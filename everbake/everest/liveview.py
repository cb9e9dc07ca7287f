"""The compact live view of running jobs: one row per job (name, state, elapsed,
last status). On a terminal the rows are redrawn in place; anywhere else (CI logs,
pipes) each change is one plain line, so logs stay readable."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

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
