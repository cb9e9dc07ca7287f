"""Following jobs politely: a backoff that slows down while nothing changes, and a
tracker per job that remembers what was seen (state, status messages, times)."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from everbake import ui
from everbake.errors import EverbakeError
from everbake.everest import jobs
from everbake.everest.jobsapi import is_transient

DEFAULT_POLL_SECONDS = 2.0
DEFAULT_POLL_MAX_SECONDS = 30.0
# A watch rides out the server being away this long before it gives up (the job
# itself keeps running on Everest; job-status finds it again).
DEFAULT_GIVE_UP_SECONDS = 600.0


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.01, float(os.environ.get(name, default)))
    except ValueError:
        return default


@dataclass
class Backoff:
    """Poll every ``first`` seconds after a change, stretching by ``factor`` up to
    ``most`` while nothing changes or the server errs; a little jitter keeps many
    watchers from polling in step."""

    first: float = DEFAULT_POLL_SECONDS
    most: float = DEFAULT_POLL_MAX_SECONDS
    factor: float = 1.5
    current: float = 0.0

    @classmethod
    def from_env(cls) -> Backoff:
        first = _env_seconds("EVERBAKE_POLL_SECONDS", DEFAULT_POLL_SECONDS)
        most = _env_seconds("EVERBAKE_POLL_MAX_SECONDS", max(first, DEFAULT_POLL_MAX_SECONDS))
        return cls(first=first, most=max(first, most))

    def next(self, changed: bool) -> float:
        if changed or not self.current:
            self.current = self.first
        else:
            self.current = min(self.most, self.current * self.factor)
        return self.current * random.uniform(0.9, 1.1)


def give_up_seconds() -> float:
    return _env_seconds("EVERBAKE_WATCH_GIVE_UP_SECONDS", DEFAULT_GIVE_UP_SECONDS)


class Patience:
    """How a watch rides out a server that errs: each transient error is said and
    forgiven, until they have lasted ``give_up_seconds()`` in a row; then one line
    says what still runs and how to pick it up (``fix``)."""

    def __init__(self, what: str, fix: str):
        self.what, self.fix = what, fix
        self.since: float | None = None

    def ok(self) -> None:
        self.since = None

    def failed(self, exc: EverbakeError) -> None:
        if not is_transient(exc):
            raise exc
        self.since = self.since or time.monotonic()
        if time.monotonic() - self.since > give_up_seconds():
            raise jobs.JobError(f"{self.what}: the server stayed unreachable ({exc}); {self.fix}")
        ui.say(f"{self.what}: {exc}; still watching")


@dataclass
class Tracker:
    """What we know of one job; ``update`` says whether anything visible changed."""

    job_id: str
    state: str = "SUBMITTED"
    statuses: list[str] = field(default_factory=list)  # info at the end, then status.txt
    submitted_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    doc: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why it FAILED, once its outputs were fetched (jobs.failure)

    @property
    def last_status(self) -> str:
        return self.statuses[-1] if self.statuses else ""

    @property
    def done(self) -> bool:
        return self.state in jobs.TERMINAL

    def elapsed(self, now: float | None = None) -> float:
        end = self.ended_at if self.ended_at is not None else (now or time.time())
        return max(0.0, end - self.submitted_at)

    def update(self, doc: dict[str, Any]) -> bool:
        self.doc = doc
        changed = False
        state = str(doc.get("state") or self.state)
        if state != self.state:
            self.state, changed = state, True
        # No public client reads a live status through REST: `info` only at the end.
        status = jobs.info(doc)
        if status and status != self.last_status:
            self.statuses.append(status)
            changed = True
        if self.done and self.ended_at is None:
            self.ended_at = time.time()
        return changed

    def note_final_status(self, text: str) -> None:
        """The status.txt output: the runtime's last word, also after a preemption."""
        text = text.strip()
        if text and text != self.last_status:
            self.statuses.append(text)

    @property
    def preempted(self) -> bool:
        return self.state == "FAILED" and jobs.is_preempted(self.statuses)

    def note_outputs(self, files: list[Any]) -> None:
        """What came back decides why a FAILED job failed (jobs.failure)."""
        self.reason = jobs.failure(self.state, self.statuses, files)


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
