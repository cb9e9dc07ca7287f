"""A sweep directory of everbake's first format (one sweep.json, rewritten after
every change) carried over into sweep.db, so it resumes like any other.

What the first format saved (issue 12's sweepstate.py): the sweep's id, app,
grid, retries, max_parallel, uploads and created time; per variation its
Variation, ``final``, and its attempts with name, started, job_id, state, the
last statuses, submitted_at, ended_at (and, later, ``reason``). An attempt saved
in an ended state had its outputs fetched before it was saved; one without a
job id was being submitted (found by name on resume, as before).
The old file is kept beside, as sweep.json.imported.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from everbake.everest import jobs
from everbake.everest.grid import Variation
from everbake.everest.sweepfetch import read_outputs
from everbake.everest.sweepstate import OLD_STATE_FILE, STATE_FILE, create

IMPORTED = OLD_STATE_FILE + ".imported"


def carry_over(directory: Path) -> bool:
    """Convert ``directory``'s sweep.json when there is no sweep.db; True if done."""
    old = directory / OLD_STATE_FILE
    if (directory / STATE_FILE).exists() or not old.is_file():
        return False
    try:
        data = json.loads(old.read_text(encoding="utf-8"))
        items = data["items"]
        variations = [Variation.from_json(item["variation"]) for item in items]
        meta = {
            "id": str(data["id"]),
            "app": str(data["app"]),
            "grid": str(data["grid"]),
            "retries": str(int(data.get("retries", 2))),
            "max_parallel": str(int(data.get("max_parallel", 4))),
            "created": repr(float(data.get("created") or 0.0)),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return False  # load_state then says how to finish it
    keys: dict[str, None] = {}
    for v in variations:
        keys.update(dict.fromkeys(v.params))

    def fill(conn: sqlite3.Connection) -> None:
        for key, uri in (data.get("uploads") or {}).items():
            conn.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?)", (key, uri))
        for v, item in zip(variations, items, strict=True):
            attempts = item.get("attempts") or []
            for n, a in enumerate(attempts):
                _attempt(conn, directory, v.index, n, a)
            status = "final" if item.get("final") else "pending"
            if not item.get("final") and attempts and not _ended(attempts[-1]):
                status = "active"
            conn.execute(
                "UPDATE variations SET status = ?, attempts = ? WHERE idx = ?",
                (status, len(attempts), v.index),
            )

    create(directory, meta, variations, {"param_keys": list(keys)}, fill).close()
    old.rename(directory / IMPORTED)
    return True


def _ended(a: dict[str, Any]) -> bool:
    return bool(a.get("job_id")) and a.get("state") in jobs.TERMINAL


def _attempt(conn: sqlite3.Connection, directory: Path, idx: int, n: int, a: dict) -> None:
    job_id = a.get("job_id") or None
    statuses = [str(s) for s in a.get("statuses") or []]
    phase = "naming" if not job_id else "fetched" if _ended(a) else "submitted"
    outcome, got = None, read_outputs(directory / str(job_id)) if job_id else None
    if phase == "fetched" and got is not None:
        job_dir = directory / str(job_id)
        ours = ("submission.json", jobs.RESULT_FILE)  # everbake's own, not outputs
        files = [p for p in job_dir.iterdir() if p.name not in ours] if job_dir.is_dir() else []
        reason = str(a.get("reason") or "") or jobs.failure(
            str(a["state"]), [*statuses, got.final_status], files
        )
        outcome = reason or str(a["state"])
    conn.execute(
        "INSERT INTO attempts (variation, n, name, job_id, phase, state, last_status, "
        "outcome, started, submitted_at, ended_at, cpu_seconds, wall_seconds, "
        "peak_rss_bytes, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            idx,
            n,
            str(a["name"]),
            job_id,
            phase,
            a.get("state") if job_id else None,
            (got.final_status if got and got.final_status else statuses[-1] if statuses else ""),
            outcome,
            float(a.get("started") or 0.0),
            a.get("submitted_at") if job_id else None,
            a.get("ended_at"),
            got.cpu_seconds if got else None,
            got.wall_seconds if got else None,
            got.peak_rss_bytes if got else None,
            json.dumps(got.metrics) if got and got.metrics else None,
        ),
    )
