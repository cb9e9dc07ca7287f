"""A sweep: every variation of a grid becomes a job; Everest distributes them, we
submit (at most N running at once), follow them all, resubmit the ones whose VM
was lost (up to K times), fetch outputs and write the summary.

The retry rule (README "Everest jobs and sweeps"): a job that FAILED with the
runtime's preempted status, or FAILED with no outputs at all (a VM that vanished
delivers none), is submitted again, up to --retries times per variation; any
other failure is the variation's answer. The application's retryFailedTasks is
false, so Everest never runs a task again on its own as well.

Outputs land in runs/sweep-<id>/<job-id>/; the state in runs/sweep-<id>/sweep.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from everbake import ui
from everbake.errors import EverbakeError
from everbake.everest import jobs, submissions, summary
from everbake.everest.client import EverestNotFound
from everbake.everest.grid import load_grid
from everbake.everest.jobsapi import JobsApi
from everbake.everest.liveview import LiveView, Row
from everbake.everest.runjob import finish, prepare, submit
from everbake.everest.sweepstate import Attempt, Item, Sweep, load_sweep, new_sweep
from everbake.everest.watch import Backoff, Patience, Tracker

# What a sweep submits again (jobs.failure): its VM was taken back or vanished.
RETRIED = (jobs.PREEMPTED, jobs.NO_OUTPUTS)


@dataclass(frozen=True)
class SweepOutcome:
    sweep: Sweep
    table: list[dict]
    csv: Path
    json: Path

    @property
    def exit_code(self) -> int:
        return 0 if all(row["state"] == "DONE" for row in self.table) else 1


def start(
    api: JobsApi, app: str, grid: Path, runs_dir: Path, max_parallel: int, retries: int
) -> Sweep:
    if max_parallel < 1:
        raise EverbakeError(f"--max-parallel {max_parallel}: give 1 or more")
    if retries < 0:
        raise EverbakeError(f"--retries {retries}: give 0 or more")
    variations = load_grid(grid)
    for v in variations:
        jobs.check_data(v.data, f"{grid}: variation '{v.label}': data")
    sweep = new_sweep(app, grid, variations, runs_dir, retries, max_parallel)
    ui.say(
        f"sweep {sweep.sweep_id}: {len(variations)} variations of app {app}; state in {sweep.path}"
    )
    return sweep


def resume(directory: Path, app: str | None, grid: Path | None) -> Sweep:
    sweep = load_sweep(directory)
    if app and app != sweep.app:
        raise EverbakeError(f"--app {app}: the sweep in {directory} runs app {sweep.app}")
    if grid and str(grid.resolve()) != sweep.grid:
        raise EverbakeError(f"--grid {grid}: the sweep in {directory} came from {sweep.grid}")
    done = sum(1 for item in sweep.items if item.final)
    ui.say(f"sweep {sweep.sweep_id}: resuming, {done} of {len(sweep.items)} finished")
    return sweep


def run(api: JobsApi, sweep: Sweep, view: LiveView | None = None) -> SweepOutcome:
    """Drive the sweep to its end; saves after every change (safe to kill anywhere)."""
    view = view or LiveView()
    backoff = Backoff.from_env()
    patience = Patience(
        f"sweep {sweep.sweep_id}", f"jobs keep running; resume with --resume {sweep.directory}"
    )
    changed = True
    while not all(item.final for item in sweep.items):
        try:
            _adopt_half_submitted(api, sweep)
            changed = _submit_more(api, sweep) or changed
            changed = _poll(api, sweep) or changed
            patience.ok()
        except EverbakeError as exc:
            patience.failed(exc)
        view.show(_rows(sweep), force=changed)
        if all(item.final for item in sweep.items):
            break
        time.sleep(backoff.next(changed))
        changed = False
    table = summary.rows(sweep)
    csv_path, json_path = summary.write(sweep)
    print(summary.format_table(table), flush=True)
    ui.say(f"summary: {csv_path} and {json_path}")
    return SweepOutcome(sweep, table, csv_path, json_path)


def _adopt_half_submitted(api: JobsApi, sweep: Sweep) -> None:
    """An attempt saved without a job id was killed (or its answer lost) around its
    POST: find its job by name, or forget the attempt so it is submitted again."""
    pending = [item for item in sweep.items if item.current and item.current.tracker is None]
    if not pending:
        return
    by_name = {str(doc.get("name")): doc for doc in api.jobs() if doc.get("id")}
    for item in pending:
        attempt = item.current
        assert attempt is not None
        doc = by_name.get(attempt.name)
        if doc:
            attempt.tracker = Tracker(str(doc["id"]), submitted_at=attempt.started)
            resource = item.variation.resource
            body = {
                "name": attempt.name,
                "inputs": doc.get("inputs") or {},
                **({"resources": [resource]} if resource else {}),
            }
            job_dir = sweep.directory / attempt.tracker.job_id
            submissions.write(job_dir, attempt.tracker.job_id, api.client.url, body, sweep.app, "")
            if attempt.tracker.update(doc) and attempt.tracker.done:
                _ended_now(api, sweep, item, attempt.tracker)
        else:
            item.attempts.pop()
    sweep.save()


def _submit_more(api: JobsApi, sweep: Sweep) -> bool:
    running = sum(1 for item in sweep.items if item.active and not _ended(item))
    changed = False
    for item in sweep.items:
        if running >= sweep.max_parallel:
            break
        if item.final or (item.current is not None and not _wants_resubmit(item)):
            continue
        attempt = Attempt(sweep.job_name(item))
        item.attempts.append(attempt)
        sweep.save()  # the name first: a crash during the POST is found again by it
        v = item.variation
        sub = jobs.Submission(
            app=sweep.app,
            version=v.version,
            params=v.params,
            data=v.data,
            resource=v.resource,
            name=attempt.name,
            debug=v.debug,
        )
        body = prepare(api, sub, sweep.uploads)
        job_id = submit(api, sub, body)
        attempt.tracker = Tracker(job_id)
        sweep.save()
        submissions.write(sweep.directory / job_id, job_id, api.client.url, body, sweep.app, "")
        running += 1
        changed = True
    return changed


def _ended(item: Item) -> bool:
    return bool(item.current and item.current.tracker and item.current.tracker.done)


def _wants_resubmit(item: Item) -> bool:
    """Ended as preempted, not final yet: the next attempt is due."""
    return _ended(item) and not item.final


def _poll(api: JobsApi, sweep: Sweep) -> bool:
    changed = False
    for item in sweep.items:
        attempt = item.current
        if item.final or attempt is None or attempt.tracker is None or attempt.tracker.done:
            continue
        tracker = attempt.tracker
        try:
            doc = api.job(tracker.job_id)
        except EverestNotFound:
            # Deleted on Everest (web UI, another client): nothing left to follow.
            tracker.state, tracker.ended_at = "MISSING", time.time()
            tracker.statuses.append("the job is gone from Everest (404)")
            item.final, changed = True, True
            sweep.save()
            continue
        if not tracker.update(doc):
            continue
        changed = True
        if tracker.done:
            _ended_now(api, sweep, item, tracker)
        sweep.save()
    return changed


def _ended_now(api: JobsApi, sweep: Sweep, item: Item, tracker: Tracker) -> None:
    outcome = finish(
        api, tracker, sweep.directory / tracker.job_id, say=lambda _m: None, quiet=True
    )
    if outcome.reason in RETRIED and item.resubmissions < sweep.retries:
        why = "was preempted" if outcome.preempted else "FAILED with no outputs"
        ui.say(
            f"{item.variation.label}: job {tracker.job_id} {why}; resubmitting "
            f"({item.resubmissions + 1} of {sweep.retries})"
        )
        return  # not final: _submit_more sends the next attempt
    item.final = True


def _rows(sweep: Sweep) -> list[Row]:
    rows = []
    for item in sweep.items:
        attempt = item.current
        if attempt and attempt.tracker:
            note = f"retry {item.resubmissions}/{sweep.retries}" if item.resubmissions else ""
            rows.append(Row(item.variation.label, attempt.tracker, note))
    return rows


def sweep_from_flags(
    api: JobsApi,
    app: str | None,
    grid: str | None,
    runs_dir: Path,
    max_parallel: int,
    retries: int,
    resume_dir: str | None,
) -> SweepOutcome:
    if resume_dir:
        sweep = resume(Path(resume_dir), app, Path(grid) if grid else None)
    else:
        if not app or not grid:
            raise EverbakeError("sweep needs --app and --grid (or --resume runs/sweep-<id>)")
        sweep = start(api, app, Path(grid), runs_dir, max_parallel, retries)
    try:
        return run(api, sweep)
    except KeyboardInterrupt:
        ui.say(
            f"sweep {sweep.sweep_id} interrupted; jobs keep running on Everest. Resume with:"
            f" invoke sweep --resume {sweep.directory}"
        )
        raise
