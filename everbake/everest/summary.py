"""A sweep's summary: one row per variation, printed as a table and written as
summary.csv and summary.json in the sweep's directory."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from everbake.everest.sweepstate import Sweep
from everbake.everest.watch import format_elapsed
from everbake.files import write_atomic, write_json

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


def rows(sweep: Sweep) -> list[dict[str, Any]]:
    table = []
    for item in sweep.items:
        attempts = [a.tracker for a in item.attempts if a.tracker]
        last = attempts[-1] if attempts else None
        first_submit = min((t.submitted_at for t in attempts), default=None)
        end = last.ended_at if last else None
        elapsed = round(end - first_submit, 1) if end is not None and first_submit else None
        table.append(
            {
                "variation": item.variation.label,
                "version": item.variation.version,
                "state": last.state if last else "NOT SUBMITTED",
                "last_status": last.last_status if last else "",
                "elapsed": elapsed,
                "job": last.job_id if last else "",
                "resubmissions": item.resubmissions,
                "failure": last.reason if last else "",
            }
        )
    return table


def write(sweep: Sweep) -> tuple[Path, Path]:
    table = rows(sweep)
    csv_path = sweep.directory / "summary.csv"
    json_path = sweep.directory / "summary.json"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    write_atomic(csv_path, buf.getvalue())
    write_json(json_path, {"sweep": sweep.sweep_id, "app": sweep.app, "jobs": table})
    return csv_path, json_path


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
