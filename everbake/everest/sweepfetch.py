"""Downloads of ended sweep jobs: a few at a time in worker threads, each file
streamed to disk (the client writes a temporary file and renames it), every
request drawn from the sweep's budget. A worker only downloads and reads files;
the sweep's main thread records each result (SQLite stays on one thread).
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError
from everbake.everest import jobs
from everbake.everest.client import EverestNotFound
from everbake.everest.jobsapi import JobsApi, is_transient
from everbake.everest.sweepstate import FetchResult, Open
from everbake.files import write_json

DEFAULT_WORKERS = 3
METRICS_FILE = "metrics.json"  # the model's out/metrics.json, copied out by the runtime
STATS_FILE = "stats.json"  # runtime/everest_runtime/stats.py write_summary
MAX_METRICS = 100
MAX_METRIC_TEXT = 200
# Outcomes after which the sweep submits the variation again (while --retries last):
# the retry rule of jobs.failure (README "Everest jobs and sweeps"): the runtime said
# the VM was preempted, or a FAILED job delivered no output at all (a VM that
# vanished writes none); any other failure is the variation's answer.
RETRIED = (jobs.PREEMPTED, jobs.NO_OUTPUTS)


@dataclass
class Fetched:
    attempt: Open
    result: FetchResult | None = None
    error: EverbakeError | None = None  # transient: the sweep tries again later


class Fetcher:
    def __init__(self, api: JobsApi, directory: Path, workers: int = DEFAULT_WORKERS):
        self.api, self.directory = api, directory
        self._tasks: queue.Queue[tuple[Open, dict[str, Any]] | None] = queue.Queue()
        self.results: queue.Queue[Fetched] = queue.Queue()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.files = 0
        self.bytes = 0
        self.notes: list[str] = []  # one line per output that could not be fetched
        self._threads = [
            threading.Thread(target=self._work, name=f"sweep-fetch-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def fetch(self, attempt: Open, doc: dict[str, Any]) -> None:
        with self._lock:
            self.in_flight += 1
        self._tasks.put((attempt, doc))

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            attempt, doc = task
            try:
                done = Fetched(attempt, result=self._fetch(attempt, doc))
            except EverbakeError as exc:
                done = Fetched(attempt, error=exc)
            except Exception as exc:  # never lose a job to a worker's surprise
                done = Fetched(attempt, error=EverbakeError(f"download failed: {exc!r}"))
            with self._lock:
                self.in_flight -= 1
            self.results.put(done)

    def _fetch(self, attempt: Open, doc: dict[str, Any]) -> FetchResult:
        state = attempt.state or "MISSING"
        dest = self.directory / str(attempt.job_id)
        for stale in dest.glob(".*.part") if dest.is_dir() else ():  # a killed download's
            stale.unlink(missing_ok=True)
        got = 0
        if "result" in doc:  # the whole result too, values that are no file included
            dest.mkdir(parents=True, exist_ok=True)
            write_json(dest / jobs.RESULT_FILE, doc["result"])
        for name, uri in jobs.output_files(doc):
            target = dest / Path(name).name  # never a path from the server
            try:
                size = self.api.download(uri, target)
            except EverbakeError as exc:
                if is_transient(exc):
                    raise
                if not isinstance(exc, EverestNotFound):
                    with self._lock:
                        self.notes.append(f"job {attempt.job_id}: {name}: {exc}")
                continue
            got += 1
            with self._lock:
                self.files += 1
                self.bytes += size
        result = read_outputs(dest)
        result.files = got
        result.bytes = sum(p.stat().st_size for p in dest.iterdir()) if dest.is_dir() else 0
        result.outcome = outcome(state, result.final_status, attempt, got)
        return result


def outcome(state: str, final_status: str, attempt: Open, files: int) -> str:
    """The job's state, or for a FAILED one why (jobs.failure: preempted, no outputs)."""
    reason = jobs.failure(state, [attempt.last_live, final_status], [None] * files)
    return reason or state


def read_outputs(dest: Path) -> FetchResult:
    """The final status, the runtime's statistics and the model's metrics, from disk."""
    result = FetchResult(outcome="")
    status = dest / jobs.STATUS_FILE
    if status.is_file():
        text = status.read_text(encoding="utf-8", errors="replace").strip()
        result.final_status = text.splitlines()[-1][:500] if text else ""
    stats = _json_object(dest / STATS_FILE)
    result.cpu_seconds = _number(stats.get("cpu_seconds"))
    result.wall_seconds = _number(stats.get("wall_seconds"))
    peak = _number(stats.get("peak_rss_bytes"))
    result.peak_rss_bytes = int(peak) if peak is not None else None
    result.metrics = flat_metrics(_json_object(dest / METRICS_FILE))
    return result


def flat_metrics(data: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's numbers and short strings (runtime/README.md); nested values,
    long texts and keys beyond the first MAX_METRICS are left out."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if len(kept) >= MAX_METRICS:
            break
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) or (
            isinstance(value, str) and len(value) <= MAX_METRIC_TEXT
        ):
            kept[str(key)] = value
    return kept


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
