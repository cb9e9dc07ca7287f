"""everbake's own record of every job it submitted: ``<job dir>/submission.json``.

Public clients read no resource from a job document, so what a resubmission
needs (app, name, inputs, resources) is written down here when the job is
submitted: ``runs/<job-id>/submission.json`` for run-job and resubmit,
``runs/sweep-<id>/<job-id>/submission.json`` for a sweep's jobs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from everbake.everest.jobs import JobError
from everbake.files import write_json

RECORD_FILE = "submission.json"
FORMAT = 1


def write(job_dir: Path, job_id: str, url: str, body: dict[str, Any], app: str, of: str) -> Path:
    """Record the submission of ``body`` (what was POSTed to ``app``) as job ``job_id``."""
    record = {
        "format": FORMAT,
        "job": job_id,
        "server": url,
        "app": app,
        "name": body.get("name", ""),
        "inputs": body.get("inputs", {}),
        "resources": body.get("resources", []),
        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resubmission_of": of,
    }
    path = job_dir / RECORD_FILE
    write_json(path, record)
    return path


def find(runs_dir: Path, job_id: str) -> dict[str, Any] | None:
    """The record of ``job_id`` in the runs dir (its own directory, or a sweep's)."""
    own = runs_dir / job_id / RECORD_FILE
    candidates = [own, *runs_dir.glob(f"sweep-*/{job_id}/{RECORD_FILE}")]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JobError(
                f"{path}: unreadable ({exc}); remove it to resubmit from Everest's job"
            ) from None
        if isinstance(data, dict) and data.get("job") == job_id:
            return data
    return None
