"""A sweep on disk: runs/sweep-<id>/sweep.db, one SQLite file (WAL), one short
transaction per change, so a sweep killed at any moment resumes without losing
or submitting a job twice.

An attempt (one job of a variation) moves through phases, each written before
the step that depends on it:
  naming     its unique job name is saved, then POST; a sweep killed here looks
             the name up in GET /api/jobs instead of submitting it again
  submitted  the server gave it an id; polled until it ends
  ended      Everest says DONE/FAILED/CANCELLED; its outputs are to be fetched
  fetched    outputs on disk, statistics and metrics read: the attempt's outcome
A submission whose answer was lost and whose job is not found by its name is
forgotten and sent again under the same name; the LOST_ANSWERS-th such answer of
a variation (counted in variations.lost) ends the attempt LOST instead.
A variation is pending (an attempt is due), active (its attempt is under way) or
final. Every query the sweep makes per change uses an index: nothing scans all
variations while the sweep runs.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake.everest import jobs
from everbake.everest.grid import Variation

STATE_FILE = "sweep.db"
OLD_STATE_FILE = "sweep.json"  # everbake's first sweep format (one JSON document)
FORMAT = 2
# A lost answer may mean the server never got the POST, or made a job its list does
# not show: a variation's POSTs may lose their answer this many times, then it ends LOST.
LOST_ANSWERS = 3
LOST = "LOST"  # an attempt's state and outcome: the job may exist, its id is unknown

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS variations (
    idx INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    spec TEXT NOT NULL,              -- Variation.as_json()
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | active | final
    attempts INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0  -- submissions whose answer was lost, job not found
);
CREATE INDEX IF NOT EXISTS variations_by_status ON variations (status, idx);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    variation INTEGER NOT NULL REFERENCES variations (idx),
    n INTEGER NOT NULL,              -- 0 for the first submission
    name TEXT NOT NULL UNIQUE,
    job_id TEXT UNIQUE,
    phase TEXT NOT NULL,             -- naming | submitted | ended | fetched
    state TEXT,                      -- Everest's state, or MISSING or LOST
    last_status TEXT NOT NULL DEFAULT '',
    outcome TEXT,                    -- jobs state, or preempted / no outputs
    started REAL NOT NULL,           -- before the POST
    submitted_at REAL,
    running_at REAL,                 -- first seen RUNNING
    ended_at REAL,                   -- first seen ended
    files INTEGER, bytes INTEGER,
    cpu_seconds REAL, wall_seconds REAL, peak_rss_bytes INTEGER,
    metrics TEXT                     -- the job's metrics.json, flattened
);
CREATE INDEX IF NOT EXISTS attempts_open ON attempts (phase) WHERE phase != 'fetched';
CREATE INDEX IF NOT EXISTS attempts_of ON attempts (variation, n);
CREATE TABLE IF NOT EXISTS uploads (key TEXT PRIMARY KEY, uri TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS metric_keys (key TEXT PRIMARY KEY, seen INTEGER NOT NULL);
"""


@dataclass
class Open:
    """An attempt not fetched yet, as the running sweep holds it in memory."""

    id: int
    variation: int
    n: int
    name: str
    job_id: str | None
    phase: str
    state: str | None
    started: float
    submitted_at: float | None
    running_at: float | None
    ended_at: float | None
    label: str = ""
    last_live: str = ""  # the last live status seen (the job document's, if any)


class SweepState:
    def __init__(self, directory: Path, conn: sqlite3.Connection):
        self.directory = directory
        self.conn = conn
        self.meta = dict(conn.execute("SELECT key, value FROM meta"))

    # ------------------------------------------------------------ identity
    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def sweep_id(self) -> str:
        return self.meta["id"]

    @property
    def app(self) -> str:
        return self.meta["app"]

    @property
    def grid(self) -> str:
        return self.meta["grid"]

    @property
    def retries(self) -> int:
        return int(self.meta["retries"])

    @property
    def max_parallel(self) -> int:
        return int(self.meta["max_parallel"])

    @property
    def created(self) -> float:
        return float(self.meta["created"])

    def setting(self, key: str, default: Any = None) -> Any:
        raw = self.meta.get(f"setting.{key}")
        return default if raw is None else json.loads(raw)

    def set_setting(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"setting.{key}", json.dumps(value))
            )
        self.meta[f"setting.{key}"] = json.dumps(value)

    def job_name(self, variation: int, n: int) -> str:
        return f"sweep-{self.sweep_id}-{variation}-{n}"

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------- reading
    def variation(self, idx: int) -> Variation:
        row = self.conn.execute("SELECT spec FROM variations WHERE idx = ?", (idx,)).fetchone()
        return Variation.from_json(json.loads(row[0]))

    def total(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM variations").fetchone()[0])

    def status_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) FROM variations GROUP BY status")
        return {status: int(n) for status, n in rows}

    def outcome_counts(self) -> dict[str, int]:
        """Final variations by the outcome of their last attempt (once, at start)."""
        rows = self.conn.execute(
            "SELECT a.outcome, count(*) FROM variations v JOIN attempts a "
            "ON a.variation = v.idx AND a.n = v.attempts - 1 "
            "WHERE v.status = 'final' GROUP BY a.outcome"
        )
        return {str(outcome): int(n) for outcome, n in rows}

    def pending(self, after: int, limit: int) -> list[int]:
        """Pending variations after index ``after``, in order (uses the status index)."""
        rows = self.conn.execute(
            "SELECT idx FROM variations WHERE status = 'pending' AND idx > ? ORDER BY idx LIMIT ?",
            (after, limit),
        )
        return [int(r[0]) for r in rows]

    def open_attempts(self) -> list[Open]:
        rows = self.conn.execute(
            "SELECT a.id, a.variation, a.n, a.name, a.job_id, a.phase, a.state, a.started, "
            "a.submitted_at, a.running_at, a.ended_at, v.label, a.last_status FROM attempts a "
            "JOIN variations v ON v.idx = a.variation WHERE a.phase != 'fetched'"
        )
        return [Open(*row) for row in rows]

    def uploads(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, uri FROM uploads"))

    def metric_keys(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM metric_keys ORDER BY seen, key")]

    def attempts_of(self, variation: int) -> list[sqlite3.Row]:
        cur = self.conn.execute(
            "SELECT * FROM attempts WHERE variation = ? ORDER BY n", (variation,)
        )
        cur.row_factory = sqlite3.Row
        return list(cur)

    def rows(self) -> Iterator[tuple[sqlite3.Row, list[sqlite3.Row]]]:
        """Every variation with its attempts, in order, streamed (summary, report)."""
        cur = self.conn.execute(
            "SELECT v.idx, v.label, v.spec, v.status, a.* FROM variations v "
            "LEFT JOIN attempts a ON a.variation = v.idx ORDER BY v.idx, a.n"
        )
        cur.row_factory = sqlite3.Row
        current: sqlite3.Row | None = None
        attempts: list[sqlite3.Row] = []
        for row in cur:
            if current is not None and row["idx"] != current["idx"]:
                yield current, attempts
                attempts = []
            current = row
            if row["id"] is not None:
                attempts.append(row)
        if current is not None:
            yield current, attempts

    # ------------------------------------------------------------- changes
    def add_upload(self, key: str, uri: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?)", (key, uri))

    def begin_attempt(self, variation: int) -> Open:
        """Save the next attempt's name (before its POST) and mark the variation active."""
        with self.conn:
            (n,) = self.conn.execute(
                "SELECT attempts FROM variations WHERE idx = ?", (variation,)
            ).fetchone()
            name = self.job_name(variation, n)
            started = time.time()
            cur = self.conn.execute(
                "INSERT INTO attempts (variation, n, name, phase, started) "
                "VALUES (?, ?, ?, 'naming', ?)",
                (variation, n, name, started),
            )
            self.conn.execute(
                "UPDATE variations SET status = 'active', attempts = ? WHERE idx = ?",
                (n + 1, variation),
            )
        assert cur.lastrowid is not None
        no = None
        return Open(cur.lastrowid, variation, n, name, no, "naming", no, started, no, no, no)

    def forget_attempt(self, attempt: Open) -> None:
        """The POST surely made no job (the server refused it): as if never begun."""
        with self.conn:
            self._forget(attempt)

    def _forget(self, attempt: Open) -> None:
        self.conn.execute("DELETE FROM attempts WHERE id = ?", (attempt.id,))
        self.conn.execute(
            "UPDATE variations SET status = 'pending', attempts = ? WHERE idx = ?",
            (attempt.n, attempt.variation),
        )

    def answer_lost(self, attempt: Open) -> int:
        """The attempt's POST went unanswered and no job of its name was found: it
        counts against LOST_ANSWERS. Under it the attempt is forgotten (the variation
        is pending; its next submission reuses the name, so a job made by any of them
        is found by it); at it the attempt ends LOST and the variation is final, in the
        same commit. Returns how many of the variation's answers were lost."""
        with self.conn:
            self.conn.execute(
                "UPDATE variations SET lost = lost + 1 WHERE idx = ?", (attempt.variation,)
            )
            (lost,) = self.conn.execute(
                "SELECT lost FROM variations WHERE idx = ?", (attempt.variation,)
            ).fetchone()
            if lost < LOST_ANSWERS:
                self._forget(attempt)
                return int(lost)
            status = (
                f"submit answer lost {lost} times; the job may exist: "
                f"invoke job-status {attempt.name} / invoke cancel-job {attempt.name}"
            )
            attempt.phase, attempt.state, attempt.last_live = "fetched", LOST, status
            self.conn.execute(
                "UPDATE attempts SET phase = 'fetched', state = ?, outcome = ?, "
                "last_status = ? WHERE id = ?",
                (LOST, LOST, status, attempt.id),
            )
            self.conn.execute(
                "UPDATE variations SET status = 'final' WHERE idx = ?", (attempt.variation,)
            )
        return int(lost)

    def submitted(self, attempt: Open, job_id: str, state: str, when: float) -> None:
        attempt.job_id, attempt.phase, attempt.state = job_id, "submitted", state
        attempt.submitted_at = attempt.submitted_at or when
        with self.conn:
            self.conn.execute(
                "UPDATE attempts SET job_id = ?, phase = 'submitted', state = ?, submitted_at = ? "
                "WHERE id = ?",
                (job_id, state, attempt.submitted_at, attempt.id),
            )

    def seen(self, attempt: Open, state: str, status: str, when: float) -> None:
        """A new state (and live status) from a poll; RUNNING and the end are timed."""
        attempt.state = state
        attempt.last_live = status or attempt.last_live
        if state not in ("SUBMITTED", "DEFERRED", "READY", "SCHEDULED") and not attempt.running_at:
            attempt.running_at = when
        ended = state in jobs.TERMINAL or state == "MISSING"
        if ended:
            attempt.phase, attempt.ended_at = "ended", attempt.ended_at or when
        with self.conn:
            self.conn.execute(
                "UPDATE attempts SET state = ?, last_status = CASE WHEN ? = '' THEN last_status "
                "ELSE ? END, running_at = ?, ended_at = ?, phase = ? WHERE id = ?",
                (
                    state,
                    status,
                    status,
                    attempt.running_at,
                    attempt.ended_at,
                    attempt.phase,
                    attempt.id,
                ),
            )

    def fetched(self, attempt: Open, result: FetchResult, final: bool) -> None:
        """The attempt's outputs are on disk: its outcome, statistics and metrics; the
        variation is final or pending (its next attempt is due) in the same commit."""
        attempt.phase = "fetched"
        with self.conn:
            self.conn.execute(
                "UPDATE attempts SET phase = 'fetched', outcome = ?, last_status = CASE WHEN "
                "? = '' THEN last_status ELSE ? END, files = ?, bytes = ?, cpu_seconds = ?, "
                "wall_seconds = ?, peak_rss_bytes = ?, metrics = ? WHERE id = ?",
                (
                    result.outcome,
                    result.final_status,
                    result.final_status,
                    result.files,
                    result.bytes,
                    result.cpu_seconds,
                    result.wall_seconds,
                    result.peak_rss_bytes,
                    json.dumps(result.metrics) if result.metrics else None,
                    attempt.id,
                ),
            )
            for key in result.metric_items:
                self.conn.execute(
                    "INSERT OR IGNORE INTO metric_keys VALUES (?, ?)", (key, attempt.variation)
                )
            self.conn.execute(
                "UPDATE variations SET status = ? WHERE idx = ?",
                ("final" if final else "pending", attempt.variation),
            )


@dataclass
class FetchResult:
    """What the download of one ended attempt found."""

    outcome: str  # DONE, FAILED, CANCELLED, MISSING, LOST, preempted, no outputs
    final_status: str = ""
    files: int = 0
    bytes: int = 0
    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    peak_rss_bytes: int | None = None
    metrics: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.metrics = self.metrics or {}

    @property
    def metric_items(self) -> dict[str, Any]:
        return self.metrics or {}


def _connect(path: Path, new: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    if new:
        conn.execute("PRAGMA page_size = 1024")  # smaller pages: fewer bytes per commit
    conn.execute("PRAGMA journal_mode = WAL")
    # WAL with synchronous NORMAL: a killed process loses nothing committed; a power
    # cut may lose the last commits, never the file's consistency.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def new_state(
    app: str,
    grid: Path,
    variations: list[Variation],
    runs_dir: Path,
    retries: int,
    parallel: int,
    settings: dict[str, Any] | None = None,
) -> SweepState:
    sweep_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    directory = runs_dir / f"sweep-{sweep_id}"
    directory.mkdir(parents=True)
    meta = {
        "id": sweep_id,
        "app": app,
        "grid": str(grid.resolve()),
        "retries": str(retries),
        "max_parallel": str(parallel),
        "created": repr(time.time()),
    }
    return create(directory, meta, variations, settings)


def create(
    directory: Path,
    meta: dict[str, str],
    variations: list[Variation],
    settings: dict[str, Any] | None = None,
    fill: Callable[[sqlite3.Connection], None] | None = None,
) -> SweepState:
    """A new sweep.db in ``directory``, written under a temporary name and renamed
    when whole (a sweep exists whole or not at all); ``fill`` adds more rows."""
    tmp = directory / f".{STATE_FILE}.new"
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    conn = _connect(tmp, new=True)
    conn.executescript(SCHEMA)
    with conn:
        rows = {"format": str(FORMAT), **meta}
        for key, value in (settings or {}).items():
            rows[f"setting.{key}"] = json.dumps(value)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", rows.items())
        conn.executemany(
            "INSERT INTO variations (idx, label, spec) VALUES (?, ?, ?)",
            ((v.index, v.label, json.dumps(v.as_json())) for v in variations),
        )
        if fill is not None:
            fill(conn)
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(directory / STATE_FILE)
    return SweepState(directory, _connect(directory / STATE_FILE))


def load_state(directory: Path) -> SweepState:
    path = directory / STATE_FILE
    if not path.is_file():
        if (directory / OLD_STATE_FILE).is_file():
            raise jobs.JobError(
                f"--resume {directory}: {OLD_STATE_FILE} is the first sweep format and could "
                "not be carried over; finish it with the everbake that started it, or fetch "
                "its jobs one by one with 'invoke fetch-job <id>'"
            )
        raise jobs.JobError(
            f"--resume {directory}: no {STATE_FILE} there; give a runs/sweep-<id> directory"
        )
    try:
        conn = _connect(path)
        fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise jobs.JobError(f"--resume {directory}: {path} is unreadable ({exc})") from None
    if not fmt or fmt[0] != str(FORMAT):
        conn.close()
        raise jobs.JobError(f"{path}: format {fmt and fmt[0]!r}; this everbake reads {FORMAT}")
    return SweepState(directory, conn)
