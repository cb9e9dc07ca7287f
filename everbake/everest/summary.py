"""A sweep's summary, written from its state in one streamed pass: summary.csv and
summary.json (one row per variation), the sweep's totals, and a short table.

Columns: the first eight are those of everbake's first sweeps (kept, in order),
then the attempt counts and times, the runtime's statistics (stats.json), the
estimated cost when the spec gave prices, the variation's parameters
(``param.<name>``) and the model's metrics (``metric.<key>``, from metrics.json).
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from everbake.everest import jobs
from everbake.everest.pricing import Prices
from everbake.everest.sweepstate import SweepState
from everbake.everest.watch import format_elapsed

COLUMNS = (
    "variation",
    "version",
    "state",
    "last_status",
    "elapsed",
    "job",
    "resubmissions",
    "failure",  # why it FAILED: preempted, no outputs, or empty (jobs.failure)
)
MORE_COLUMNS = (
    "attempts",
    "queued_seconds",
    "run_seconds",
    "cpu_seconds",
    "peak_rss_bytes",
)
COST_COLUMNS = ("cost", "cost_standard")
ENDED_STATES = ("DONE", "FAILED", "CANCELLED", "MISSING")


@dataclass
class Totals:
    variations: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    jobs: int = 0  # attempts submitted (or being submitted)
    resubmissions: int = 0
    preemptions: int = 0
    cpu_seconds: float = 0.0
    run_seconds: float = 0.0
    peak_rss_bytes: int = 0
    first_submit: float | None = None
    last_end: float | None = None
    cost: float | None = None
    cost_standard: float | None = None
    currency: str = ""

    def as_json(self) -> dict[str, Any]:
        wall = (
            round(self.last_end - self.first_submit, 1)
            if self.first_submit is not None and self.last_end is not None
            else None
        )
        return {
            "variations": self.variations,
            "outcomes": dict(sorted(self.outcomes.items())),
            "jobs": self.jobs,
            "resubmissions": self.resubmissions,
            "preemptions": self.preemptions,
            "cpu_hours": round(self.cpu_seconds / 3600, 4),
            "run_hours": round(self.run_seconds / 3600, 4),
            "max_peak_rss_bytes": self.peak_rss_bytes,
            "wall_seconds": wall,
            "cost": None if self.cost is None else round(self.cost, 9),
            "cost_standard": None if self.cost_standard is None else round(self.cost_standard, 9),
            "currency": self.currency,
        }


@dataclass(frozen=True)
class Written:
    csv: Path
    json: Path
    totals: dict[str, Any]


def run_seconds(attempt: sqlite3.Row) -> float | None:
    """How long the task ran: the runtime's own wall time, else RUNNING -> end as seen."""
    if attempt["wall_seconds"] is not None:
        return float(attempt["wall_seconds"])
    if attempt["running_at"] and attempt["ended_at"]:
        return max(0.0, attempt["ended_at"] - attempt["running_at"])
    return None


def queued_seconds(attempt: sqlite3.Row) -> float | None:
    start = attempt["submitted_at"]
    until = attempt["running_at"] or attempt["ended_at"]
    return max(0.0, until - start) if start and until else None


def rows(state: SweepState, totals: Totals | None = None) -> Iterator[dict[str, Any]]:
    """One summary row per variation, streamed from the state; ``totals`` is filled
    as they go."""
    prices = Prices.from_setting(state.setting("prices"))
    totals = totals if totals is not None else Totals()
    totals.currency = prices.currency if prices else ""
    if prices:
        totals.cost = 0.0
        totals.cost_standard = 0.0 if prices.standard else None
    metric_keys = state.metric_keys()
    param_keys = state.setting("param_keys", [])
    for var, attempts in state.rows():
        spec = json.loads(var["spec"])
        last = attempts[-1] if attempts else None
        first_submit = min((a["submitted_at"] for a in attempts if a["submitted_at"]), default=None)
        end = last["ended_at"] if last else None
        row: dict[str, Any] = {
            "variation": var["label"],
            "version": spec.get("version"),
            "state": (last["state"] or "SUBMITTING") if last else "NOT SUBMITTED",
            "last_status": last["last_status"] if last else "",
            "elapsed": round(end - first_submit, 1) if end and first_submit else None,
            "job": (last["job_id"] or "") if last else "",
            "resubmissions": max(0, len(attempts) - 1),
            "failure": _failure(last["outcome"]) if last else "",
            "attempts": len(attempts),
            "queued_seconds": _round(queued_seconds(last)) if last else None,
            "run_seconds": _round(run_seconds(last)) if last else None,
            "cpu_seconds": last["cpu_seconds"] if last else None,
            "peak_rss_bytes": last["peak_rss_bytes"] if last else None,
        }
        totals.variations += 1
        if var["status"] == "final" and last is not None:
            key = last["outcome"] or last["state"] or "?"
            totals.outcomes[key] = totals.outcomes.get(key, 0) + 1
        totals.jobs += len(attempts)
        totals.resubmissions += row["resubmissions"]
        for a in attempts:
            totals.preemptions += a["outcome"] == "preempted"
            totals.cpu_seconds += a["cpu_seconds"] or 0.0
            totals.run_seconds += run_seconds(a) or 0.0
            totals.peak_rss_bytes = max(totals.peak_rss_bytes, a["peak_rss_bytes"] or 0)
            if a["submitted_at"]:
                first = totals.first_submit or a["submitted_at"]
                totals.first_submit = min(first, a["submitted_at"])
            if a["ended_at"]:
                totals.last_end = max(totals.last_end or 0.0, a["ended_at"])
        if prices:
            cost = sum(prices.cost(run_seconds(a) or 0.0) for a in attempts)
            row["cost"] = round(cost, 6)
            totals.cost = (totals.cost or 0.0) + cost
            if prices.standard and last is not None:
                standard = prices.cost_standard(run_seconds(last) or 0.0)
                row["cost_standard"] = round(standard, 6)
                totals.cost_standard = (totals.cost_standard or 0.0) + standard
        params = spec.get("params") or {}
        for key in param_keys:
            row[f"param.{key}"] = _cell(params.get(key))
        metrics = json.loads(last["metrics"]) if last and last["metrics"] else {}
        for key in metric_keys:
            row[f"metric.{key}"] = metrics.get(key)
        yield row


def columns(state: SweepState) -> list[str]:
    cols = [*COLUMNS, *MORE_COLUMNS]
    if Prices.from_setting(state.setting("prices")):
        cols += COST_COLUMNS
    cols += [f"param.{k}" for k in state.setting("param_keys", [])]
    cols += [f"metric.{k}" for k in state.metric_keys()]
    return cols


def write(state: SweepState, progress: Callable[[int], None] | None = None) -> Written:
    """summary.csv and summary.json, each through a temporary file renamed when whole
    (a sweep killed while writing them leaves the last good ones)."""
    csv_path = state.directory / "summary.csv"
    json_path = state.directory / "summary.json"
    cols = columns(state)
    totals = Totals()
    _remove_leftovers(state.directory, ("summary.csv", "summary.json"))
    with _Atomic(csv_path) as out_csv, _Atomic(json_path) as out_json:
        writer = csv.DictWriter(
            out_csv, fieldnames=cols, lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        head = {"sweep": state.sweep_id, "app": state.app, "columns": cols}
        out_json.write(json.dumps(head, indent=1)[:-2] + ',\n "jobs": [')
        for n, row in enumerate(rows(state, totals)):
            writer.writerow(row)
            out_json.write(("\n  " if n == 0 else ",\n  ") + json.dumps(row, sort_keys=False))
            if progress is not None:
                progress(n + 1)
        out_json.write('\n ],\n "totals": ' + json.dumps(totals.as_json(), indent=1) + "\n}\n")
    return Written(csv_path, json_path, totals.as_json())


def _remove_leftovers(directory: Path, names: tuple[str, ...]) -> None:
    """Temporary files of a writer that was killed (their pid is in their name)."""
    for name in names:
        for stale in directory.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


class _Atomic:
    """A text file written beside ``path`` and renamed over it only when complete."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def __enter__(self) -> TextIO:
        self.file = open(self.tmp, "w", encoding="utf-8", newline="")
        return self.file

    def __exit__(self, kind: object, *rest: object) -> None:
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def read_rows(json_path: Path) -> list[dict[str, Any]]:
    return list(json.loads(json_path.read_text(encoding="utf-8"))["jobs"])


def totals_lines(totals: dict[str, Any]) -> list[str]:
    outcomes = ", ".join(f"{k} {v}" for k, v in totals["outcomes"].items()) or "none ended"
    lines = [
        f"totals: {totals['variations']} variations ({outcomes}); {totals['jobs']} jobs, "
        f"{totals['resubmissions']} resubmitted, {totals['preemptions']} preempted",
        f"totals: {totals['cpu_hours']:.3f} CPU-hours, {totals['run_hours']:.3f} run-hours",
    ]
    if totals["cost"] is not None:
        cur = f" {totals['currency']}" if totals["currency"] else ""
        line = f"estimated cost: {_money(totals['cost'])}{cur}"
        if totals["cost_standard"] is not None:
            line += f" (on standard VMs: {_money(totals['cost_standard'])}{cur})"
        line += "; run time only, VM start-up and idle time not counted"
        lines.append(line)
    return lines


def format_table(table: list[dict[str, Any]]) -> str:
    shown = [
        [
            r["variation"],
            r["version"],
            r["state"],
            format_elapsed(r["elapsed"]) if r["elapsed"] is not None else "-",
            str(r["resubmissions"]),
            r["last_status"],
        ]
        for r in table
    ]
    head = ["variation", "version", "state", "elapsed", "resub", "last status"]
    widths = [max(len(row[i]) for row in [head, *shown]) for i in range(len(head) - 1)]
    lines = []
    for row in [head, *shown]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _failure(outcome: str | None) -> str:
    return outcome if outcome in (jobs.PREEMPTED, jobs.NO_OUTPUTS) else ""


def outcome_of(row: dict[str, Any]) -> str:
    """DONE, FAILED, CANCELLED, MISSING, LOST, preempted or no outputs: a row's outcome."""
    return str(row.get("failure") or row.get("state") or "")


def _money(value: float) -> str:
    return f"{value:.2f}" if value >= 1 or value == 0 else f"{value:.3g}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float) else json.dumps(value)
