"""A sweep on disk: runs/sweep-<id>/sweep.json, rewritten atomically after every change,
so a sweep killed at any moment resumes without submitting a finished job again.

Before each POST the attempt is written with its unique job name and no id; if the
process dies between the POST and the next write, resume finds the job by that
name in `GET /api/jobs` instead of submitting it twice.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake.everest import jobs
from everbake.everest.grid import Variation
from everbake.everest.watch import Tracker
from everbake.files import write_json

STATE_FILE = "sweep.json"
FORMAT = 1


@dataclass
class Attempt:
    name: str  # the job name we submit under: findable after a crash mid-submit
    tracker: Tracker | None = None  # None until the server gave the job an id
    started: float = field(default_factory=time.time)  # when we began submitting it

    def as_json(self) -> dict[str, Any]:
        t = self.tracker
        return {
            "name": self.name,
            "started": self.started,
            "job_id": t.job_id if t else None,
            "state": t.state if t else None,
            "statuses": t.statuses[-5:] if t else [],
            "submitted_at": t.submitted_at if t else None,
            "ended_at": t.ended_at if t else None,
            "reason": t.reason if t else "",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        tracker = None
        if data.get("job_id"):
            tracker = Tracker(
                job_id=data["job_id"],
                state=data.get("state") or "SUBMITTED",
                statuses=list(data.get("statuses") or []),
                submitted_at=float(data.get("submitted_at") or time.time()),
                ended_at=data.get("ended_at"),
                reason=str(data.get("reason") or ""),
            )
        return cls(
            name=data["name"], tracker=tracker, started=float(data.get("started") or time.time())
        )


@dataclass
class Item:
    """One variation and its jobs (the first submission and any resubmissions)."""

    variation: Variation
    attempts: list[Attempt] = field(default_factory=list)
    final: bool = False  # no more attempts: its last job's state is the answer

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def active(self) -> bool:
        return not self.final and self.current is not None

    @property
    def resubmissions(self) -> int:
        return max(0, len(self.attempts) - 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "variation": self.variation.as_json(),
            "attempts": [a.as_json() for a in self.attempts],
            "final": self.final,
        }


@dataclass
class Sweep:
    sweep_id: str
    app: str
    grid: str
    directory: Path
    items: list[Item]
    retries: int = 2
    max_parallel: int = 4
    uploads: dict[str, str] = field(default_factory=dict)  # local archive -> file URI
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    def job_name(self, item: Item) -> str:
        return f"sweep-{self.sweep_id}-{item.variation.index}-{len(item.attempts)}"

    def save(self) -> None:
        write_json(
            self.path,
            {
                "format": FORMAT,
                "id": self.sweep_id,
                "app": self.app,
                "grid": self.grid,
                "retries": self.retries,
                "max_parallel": self.max_parallel,
                "uploads": self.uploads,
                "created": self.created,
                "items": [item.as_json() for item in self.items],
            },
        )


def new_sweep(
    app: str, grid: Path, variations: list[Variation], runs_dir: Path, retries: int, parallel: int
) -> Sweep:
    sweep_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    sweep = Sweep(
        sweep_id=sweep_id,
        app=app,
        grid=str(grid.resolve()),
        directory=runs_dir / f"sweep-{sweep_id}",
        items=[Item(v) for v in variations],
        retries=retries,
        max_parallel=parallel,
    )
    sweep.save()
    return sweep


def load_sweep(directory: Path) -> Sweep:
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise jobs.JobError(
            f"--resume {directory}: no {STATE_FILE} there; give a runs/sweep-<id> directory"
        ) from None
    except (OSError, ValueError) as exc:
        raise jobs.JobError(f"--resume {directory}: {path} is unreadable ({exc})") from None
    if data.get("format") != FORMAT:
        raise jobs.JobError(f"{path}: format {data.get('format')!r}; this everbake reads {FORMAT}")
    items = [
        Item(
            Variation.from_json(raw["variation"]),
            [Attempt.from_json(a) for a in raw.get("attempts", [])],
            bool(raw.get("final")),
        )
        for raw in data["items"]
    ]
    return Sweep(
        sweep_id=data["id"],
        app=data["app"],
        grid=data["grid"],
        directory=directory,
        items=items,
        retries=int(data.get("retries", 2)),
        max_parallel=int(data.get("max_parallel", 4)),
        uploads=dict(data.get("uploads") or {}),
        created=float(data.get("created") or time.time()),
    )
