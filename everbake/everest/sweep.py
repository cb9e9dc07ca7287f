"""A sweep: every variation of a grid becomes a job; Everest distributes them, we
submit (at most N not ended at once), follow them, resubmit the ones whose VM was
preempted (up to K times), fetch outputs and write the summary and the report.

Polite to a shared server: every request (uploads, submits, polls, downloads,
the client's own retries) is drawn from one budget (--max-requests-per-second),
and a Retry-After pauses them all. Following many jobs, one GET /api/jobs serves
every job it lists (the public client's getJobs reads the same documents as
GET /api/jobs/<id>); a list that is absent (404, 4xx) is not asked again, jobs a
partial list leaves out are polled one by one, and a large list is asked for at
most LIST_DOCS_PER_SECOND documents a second. Jobs polled one by one go nearest
to their expected end first.

A submission whose answer was lost is looked up by its unique name; one not
found is sent again under that name, at most sweepstate.LOST_ANSWERS times, then
the variation ends LOST saying how to find or cancel the job. A server that keeps
failing is given up on after EVERBAKE_WATCH_GIVE_UP_SECONDS of failures in a row,
measured for submissions, polls and downloads apart: only a success of the same
kind resets each.

Cost per job stays constant: the state is SQLite (sweepstate.py) changed by one
short transaction per event, the jobs in memory are the ones under way (at most
--max-parallel), and nothing loops over all variations while the sweep runs.
Outputs land in runs/sweep-<id>/<job-id>/.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake import ui
from everbake.errors import EverbakeError
from everbake.everest import jobs, report, submissions, summary, sweepimport
from everbake.everest.budget import DEFAULT_RATE, RequestBudget, check_rate
from everbake.everest.client import EverestNotFound, EverestUnavailable
from everbake.everest.grid import load_grid
from everbake.everest.jobsapi import JobsApi, is_transient
from everbake.everest.liveview import SweepView, ViewState
from everbake.everest.runjob import prepare, submit
from everbake.everest.sweepfetch import DEFAULT_WORKERS, RETRIED, Fetched, Fetcher
from everbake.everest.sweepstate import LOST, LOST_ANSWERS, Open, SweepState, load_state, new_state
from everbake.everest.watch import Backoff, Patience

LIST_DOCS_PER_SECOND = 1000.0
SMALL_TABLE = 50  # a summary this long is printed whole; longer ones in the files


@dataclass(frozen=True)
class SweepOutcome:
    state: SweepState
    counts: dict[str, int]  # final variations by outcome
    csv: Path
    json: Path
    report: Path

    @property
    def sweep_id(self) -> str:
        return self.state.sweep_id

    @property
    def not_done(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome != "DONE")

    @property
    def exit_code(self) -> int:
        return 1 if self.not_done else 0

    @property
    def table(self) -> list[dict[str, Any]]:
        return summary.read_rows(self.json)


def start(
    app: str,
    grid: Path,
    runs_dir: Path,
    max_parallel: int,
    retries: int,
    settings: dict[str, Any] | None = None,
) -> SweepState:
    if max_parallel < 1:
        raise EverbakeError(f"--max-parallel {max_parallel}: give 1 or more")
    if retries < 0:
        raise EverbakeError(f"--retries {retries}: give 0 or more")
    variations = load_grid(grid)
    param_keys: dict[str, None] = {}
    for v in variations:
        jobs.check_data(v.data, f"{grid}: variation '{v.label}': data")
        param_keys.update(dict.fromkeys(v.params))
    settings = {**(settings or {}), "param_keys": list(param_keys)}
    state = new_state(app, grid, variations, runs_dir, retries, max_parallel, settings)
    ui.say(
        f"sweep {state.sweep_id}: {len(variations)} variations of app {app}; state in {state.path}"
    )
    return state


def resume(directory: Path, app: str | None, grid: Path | None) -> SweepState:
    if sweepimport.carry_over(directory):
        ui.say(f"sweep in {directory}: the first format's sweep.json carried over into sweep.db")
    state = load_state(directory)
    if app and app != state.app:
        raise EverbakeError(f"--app {app}: the sweep in {directory} runs app {state.app}")
    if grid and str(grid.resolve()) != state.grid:
        raise EverbakeError(f"--grid {grid}: the sweep in {directory} came from {state.grid}")
    counts = state.status_counts()
    ui.say(
        f"sweep {state.sweep_id}: resuming, {counts.get('final', 0)} of {state.total()} finished"
    )
    return state


def run(
    api: JobsApi,
    state: SweepState,
    view: SweepView | None = None,
    rate: float = DEFAULT_RATE,
    budget: RequestBudget | None = None,
) -> SweepOutcome:
    budget = budget or RequestBudget(rate)
    api.client.pacer = budget
    return _Runner(api, state, view or SweepView(), budget).run()


class _Recorded(dict[str, str]):
    """The uploads cache: what runjob.submit adds is saved in the state at once."""

    def __init__(self, state: SweepState):
        super().__init__(state.uploads())
        self.state = state

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self.state.add_upload(key, value)


class _Runner:
    def __init__(self, api: JobsApi, state: SweepState, view: SweepView, budget: RequestBudget):
        self.api, self.state, self.view, self.budget = api, state, view, budget
        backoff = Backoff.from_env()
        self.first, self.most = backoff.first, backoff.most
        fix = f"jobs keep running; resume with --resume {state.directory}"
        self.submits = Patience(f"sweep {state.sweep_id}, submitting", fix)
        self.polls = Patience(f"sweep {state.sweep_id}, polling", fix)
        self.fetches = Patience(f"sweep {state.sweep_id}, downloading", fix)
        self.fetcher = Fetcher(api, state.directory)
        self.uploads = _Recorded(state)
        counts = state.status_counts()
        self.left = counts.get("pending", 0) + counts.get("active", 0)
        self.vs = ViewState(total=state.total(), outcomes=state.outcome_counts())
        self.cursor: int | None = -1  # pending variations are read in index order after this
        self.queue: deque[int] = deque()
        self.retry: deque[int] = deque()
        self.by_job: dict[str, Open] = {}  # submitted, not ended: polled
        self.lookups: list[Open] = []  # POSTed, answer lost: found by name
        self.need_doc: deque[Open] = deque()  # ended, document (result) still to get
        self.refetch: list[tuple[float, Open, dict[str, Any]]] = []
        self.heap: list[tuple[float, int, str]] = []
        self.due: dict[str, float] = {}
        self.interval: dict[str, float] = {}
        self.missed: set[str] = set()
        self.seq = itertools.count()
        self.list_ok = True
        self.list_next = 0.0
        self.list_size = 0
        self.typical = 0.0  # an average job's time from submit to end (for the first poll)
        self.started = time.monotonic()
        for attempt in state.open_attempts():
            self._adopt(attempt)

    # --------------------------------------------------------------- loop
    def run(self) -> SweepOutcome:
        try:
            while self.left > 0:
                self._collect()
                # A server failing polls is not sent more jobs in the same turn.
                if not self._failed(self._poll, self.polls):
                    self._failed(self._submit_more, self.submits)
                self._show()
                if self.left > 0:
                    self._sleep(self._next_wake())
        finally:
            self.fetcher.close()
        self._show(force=True)
        self.view.close()
        return _finish(self.state)

    def _failed(self, work: Callable[[], None], patience: Patience) -> bool:
        """Do ``work``; a transient error is told to ``patience`` (which gives up when
        that kind of call kept failing) and waited out a little."""
        try:
            work()
        except EverbakeError as exc:
            patience.failed(exc)
            self._sleep(self.first)
            return True
        return False

    def _show(self, force: bool = False) -> None:
        vs = self.vs
        vs.running = self.by_job.values()  # a view: nothing copied per tick
        fetcher = self.fetcher
        vs.fetching, vs.files, vs.bytes = fetcher.in_flight, fetcher.files, fetcher.bytes
        vs.requests, vs.rate = self.budget.granted, self.budget.rate
        vs.elapsed = time.monotonic() - self.started
        self.view.show(vs, force)

    def _next_wake(self) -> float:
        now = time.monotonic()
        wake = now + self.most
        if self.heap:
            wake = min(wake, self.heap[0][0])
        if self.need_doc:
            wake = now
        if self.lookups:
            wake = min(wake, self.list_next)
        if (self.queue or self.retry or self.cursor is not None) and self._room():
            wake = now
        if self.refetch:
            wake = min(wake, min(t for t, _, _ in self.refetch))
        return max(0.0, min(wake - now, 1.0))

    def _sleep(self, seconds: float) -> None:
        """Wait, waking early when a download finishes."""
        if seconds <= 0:
            return
        try:
            done = self.fetcher.results.get(timeout=seconds)
        except queue.Empty:
            return
        self._record(done)

    # ------------------------------------------------------------ adopting
    def _adopt(self, attempt: Open) -> None:
        """An attempt found open at start (a resumed sweep)."""
        if attempt.phase == "naming":
            self.lookups.append(attempt)
        elif attempt.phase == "submitted":
            self._follow(attempt, self.first)
        else:  # ended: its document (with the result) is fetched again
            self.need_doc.append(attempt)

    def _follow(self, attempt: Open, first_poll: float) -> None:
        job_id = str(attempt.job_id)
        self.by_job[job_id] = attempt
        self.interval[job_id] = self.first
        self._schedule(job_id, first_poll)

    def _schedule(self, job_id: str, delay: float) -> None:
        due = time.monotonic() + delay
        self.due[job_id] = due
        heapq.heappush(self.heap, (due, next(self.seq), job_id))

    # ------------------------------------------------------------ submits
    def _room(self) -> bool:
        """Fewer than --max-parallel jobs not ended, and downloads not lagging far."""
        active = len(self.by_job) + len(self.lookups) + len(self.need_doc)
        fetching = self.fetcher.in_flight + len(self.refetch)
        most = self.state.max_parallel
        return active < most and fetching < most + DEFAULT_WORKERS

    def _next_pending(self) -> int | None:
        if self.retry:
            return self.retry.popleft()
        if not self.queue and self.cursor is not None:
            batch = self.state.pending(self.cursor, 200)
            self.queue.extend(batch)
            self.cursor = batch[-1] if batch else None
        return self.queue.popleft() if self.queue else None

    def _submit_more(self) -> None:
        sent = 0
        while self._room() and sent < max(1, int(self.budget.rate)):
            idx = self._next_pending()
            if idx is None:
                return
            self._submit(idx)
            sent += 1

    def _submit(self, idx: int) -> None:
        v = self.state.variation(idx)
        attempt = self.state.begin_attempt(idx)  # the name is saved before the POST
        attempt.label = v.label
        sub = jobs.Submission(
            app=self.state.app,
            version=v.version,
            params=v.params,
            data=v.data,
            resource=v.resource,
            name=attempt.name,
            debug=v.debug,
        )
        try:
            body = prepare(self.api, sub, self.uploads)
        except EverbakeError as exc:
            self.state.forget_attempt(attempt)  # an upload failed: nothing was POSTed
            if is_transient(exc):
                self.retry.appendleft(idx)
            raise
        try:
            job_id = submit(self.api, sub, body)
            self.submits.ok()
        except EverestUnavailable as exc:
            if exc.status is not None:
                self.state.forget_attempt(attempt)  # the server refused it: no job
                self.retry.appendleft(idx)
                raise
            self.lookups.append(attempt)  # the job may exist: found by its name
            raise EverestUnavailable(
                f"no answer came to the submission of job {attempt.name} (the connection "
                "broke); the job may exist: looking for it by its name"
            ) from None
        except EverbakeError:
            self.state.forget_attempt(attempt)  # refused (400, 404, ...): no job was made
            raise
        # Anything else (Ctrl-C during the POST) leaves the name saved: a resumed
        # sweep looks the job up by it.
        self.state.submitted(attempt, job_id, "SUBMITTED", time.time())
        self._record_submission(job_id, body)
        self._follow(attempt, max(self.first, min(self.most, self.typical * 0.9)))

    def _record_submission(self, job_id: str, body: dict[str, Any]) -> None:
        """everbake's own record (submissions.py): what resubmit needs later."""
        job_dir = self.state.directory / job_id
        submissions.write(job_dir, job_id, self.api.client.url, body, self.state.app, "")

    # --------------------------------------------------------------- polls
    def _due_jobs(self, now: float) -> list[str]:
        found: list[str] = []
        while self.heap and self.heap[0][0] <= now:
            due, _, job_id = heapq.heappop(self.heap)
            if job_id in self.by_job and self.due.get(job_id) == due:
                found.append(job_id)
        return found

    def _poll(self) -> None:
        now = time.monotonic()
        due = self._due_jobs(now)
        try:
            listed = self._maybe_list(now, due)
            rest = [j for j in due if j not in listed]
            for n, job_id in enumerate(rest):
                if n >= max(1, int(self.budget.rate)):
                    for later in rest[n:]:
                        self._schedule(later, 0.0)
                    break
                self._poll_one(job_id)
            while self.need_doc:
                attempt = self.need_doc[0]
                self._document(attempt)
                self.need_doc.popleft()
            self._retry_fetches(now)
        except BaseException:
            for job_id in due:
                if job_id in self.by_job and self.due.get(job_id, 0) <= now:
                    self._schedule(job_id, self.first)
            raise

    def _maybe_list(self, now: float, due: list[str]) -> set[str]:
        """One GET /api/jobs when it serves two or more due jobs (or name lookups)."""
        wanted = [j for j in due if j not in self.missed]
        if not self.list_ok:
            if self.lookups:
                self._lookups_failed("the server lists no jobs")
            return set()
        if now < self.list_next or (len(wanted) < 2 and not self.lookups):
            return set()
        try:
            docs = self.api.jobs()
            self.polls.ok()
        except EverbakeError as exc:
            if is_transient(exc):
                raise
            self.list_ok = False
            ui.say(f"GET /api/jobs is not available ({exc}); polling each job instead")
            self._lookups_failed("the server lists no jobs")
            return set()
        self.list_size = len(docs)
        self.list_next = now + max(self.first, self.list_size / LIST_DOCS_PER_SECOND)
        served: set[str] = set()
        names = {a.name: a for a in self.lookups}
        for doc in docs:
            job_id = str(doc.get("id") or "")
            attempt = self.by_job.get(job_id)
            if attempt is not None:
                served.add(job_id)
                self._update(attempt, doc)
            elif names and str(doc.get("name")) in names and job_id:
                found = names.pop(str(doc.get("name")))
                self.lookups.remove(found)
                self.submits.ok()  # the lost answer's job exists: that submission worked
                self.state.submitted(
                    found, job_id, str(doc.get("state") or "SUBMITTED"), found.started
                )
                resource = self.state.variation(found.variation).resource
                body = {"name": found.name, "inputs": doc.get("inputs") or {}}
                self._record_submission(
                    job_id, {**body, "resources": [resource]} if resource else body
                )
                self._follow(found, 0.0)
                self._update(found, doc)
        if self.lookups:
            self._lookups_failed("not in GET /api/jobs")
        self.missed = {j for j in wanted if j not in served}
        for job_id in due:
            if job_id in served and job_id in self.by_job:
                self._reschedule(job_id, changed=False)
        return served

    def _lookups_failed(self, why: str) -> None:
        """A lost submission not found by name: submitted again, saying so, until the
        variation's lost answers reach LOST_ANSWERS; then it ends LOST."""
        for attempt in self.lookups:
            lost = self.state.answer_lost(attempt)
            if attempt.phase == "fetched":
                self.left -= 1
                self.vs.outcomes[LOST] = self.vs.outcomes.get(LOST, 0) + 1
                self.vs.failures.append((attempt.label, LOST, attempt.last_live))
                ui.say(f"{attempt.label}: {attempt.last_live}")
                continue
            ui.say(
                f"job {attempt.name}: its submission's answer was lost and it is {why}; "
                f"submitting it again ({lost} of {LOST_ANSWERS} lost answers; if two jobs of "
                "that name appear, cancel one: 'invoke cancel-job <id>')"
            )
            self.retry.append(attempt.variation)
        self.lookups = []

    def _poll_one(self, job_id: str) -> None:
        attempt = self.by_job[job_id]
        try:
            doc = self.api.job(job_id)
        except EverestNotFound:
            # Deleted on Everest (web UI, another client): nothing left to follow.
            self.polls.ok()
            self.state.seen(attempt, "MISSING", "the job is gone from Everest (404)", time.time())
            self._ended(attempt, {})
            return
        except BaseException:
            self._schedule(job_id, self.first)
            raise
        self.polls.ok()
        self.missed.discard(job_id)
        changed = self._update(attempt, doc)
        if job_id in self.by_job:
            self._reschedule(job_id, changed)

    def _reschedule(self, job_id: str, changed: bool) -> None:
        step = self.first if changed else min(self.most, self.interval[job_id] * 1.5)
        self.interval[job_id] = step
        self._schedule(job_id, step)

    def _update(self, attempt: Open, doc: dict[str, Any]) -> bool:
        state = str(doc.get("state") or attempt.state or "SUBMITTED")
        status = jobs.info(doc)  # public clients read info once FAILED/CANCELLED only
        changed = state != attempt.state or bool(status and status != attempt.last_live)
        if changed:
            self.state.seen(attempt, state, status, time.time())
        if state in jobs.TERMINAL:
            if "result" in doc or state == "CANCELLED":
                self._ended(attempt, doc)
            else:  # a listed document without its result: GET the job itself
                self._drop(attempt)
                self.need_doc.append(attempt)
        return changed

    def _document(self, attempt: Open) -> None:
        try:
            doc = self.api.job(str(attempt.job_id))
        except EverestNotFound:
            self.state.seen(attempt, "MISSING", "the job is gone from Everest (404)", time.time())
            doc = {}
        self.polls.ok()
        if not doc or str(doc.get("state")) in jobs.TERMINAL:
            self._ended(attempt, doc)
        else:  # resumed in the 'ended' phase yet running: cannot be; follow it anyway
            self._follow(attempt, self.first)

    def _drop(self, attempt: Open) -> None:
        job_id = str(attempt.job_id)
        self.by_job.pop(job_id, None)
        self.due.pop(job_id, None)
        self.interval.pop(job_id, None)
        self.missed.discard(job_id)

    def _ended(self, attempt: Open, doc: dict[str, Any]) -> None:
        self._drop(attempt)
        if attempt.submitted_at and attempt.ended_at:
            took = attempt.ended_at - attempt.submitted_at
            self.typical = took if not self.typical else 0.8 * self.typical + 0.2 * took
        self.fetcher.fetch(attempt, doc)

    # ------------------------------------------------------------ fetches
    def _collect(self) -> None:
        while True:
            try:
                done = self.fetcher.results.get_nowait()
            except queue.Empty:
                return
            self._record(done)

    def _record(self, done: Fetched) -> None:
        attempt = done.attempt
        if done.error is not None or done.result is None:
            self.refetch.append((time.monotonic() + self.first, attempt, {}))
            if done.error is not None:
                self.fetches.failed(done.error)
            return
        self.fetches.ok()
        result = done.result
        final = result.outcome not in RETRIED or attempt.n >= self.state.retries
        self.state.fetched(attempt, result, final)
        if final:
            self.left -= 1
            self.vs.outcomes[result.outcome] = self.vs.outcomes.get(result.outcome, 0) + 1
            if result.outcome != "DONE":
                self.vs.failures.append((attempt.label, result.outcome, result.final_status))
        else:
            self.vs.resubmitted += 1
            why = "was preempted" if result.outcome == jobs.PREEMPTED else "FAILED with no outputs"
            ui.say(
                f"{attempt.label}: job {attempt.job_id} {why}; resubmitting "
                f"({attempt.n + 1} of {self.state.retries})"
            )
            self.retry.append(attempt.variation)

    def _retry_fetches(self, now: float) -> None:
        if not self.refetch:
            return
        due = [item for item in self.refetch if item[0] <= now]
        self.refetch = [item for item in self.refetch if item[0] > now]
        for _, attempt, _ in due:
            self.need_doc.append(attempt)  # its document again, then its outputs


def _finish(state: SweepState) -> SweepOutcome:
    written = summary.write(state)
    html = report.write(state)
    counts = state.outcome_counts()
    if state.total() <= SMALL_TABLE:
        print(summary.format_table(summary.read_rows(written.json)), flush=True)
    for line in summary.totals_lines(written.totals):
        ui.say(line)
    ui.say(f"summary: {written.csv} and {written.json}; report: {html}")
    return SweepOutcome(state, counts, written.csv, written.json, html)


def sweep_from_flags(
    api: JobsApi,
    app: str | None,
    grid: str | None,
    runs_dir: Path,
    max_parallel: int,
    retries: int,
    resume_dir: str | None,
    rate: float = DEFAULT_RATE,
    settings: dict[str, Any] | None = None,
) -> SweepOutcome:
    rate = check_rate(rate)
    if resume_dir:
        state = resume(Path(resume_dir), app, Path(grid) if grid else None)
        if settings:
            for key, value in settings.items():
                state.set_setting(key, value)
    else:
        if not app or not grid:
            raise EverbakeError("sweep needs --app and --grid (or --resume runs/sweep-<id>)")
        state = start(app, Path(grid), runs_dir, max_parallel, retries, settings)
    try:
        return run(api, state, rate=rate)
    except KeyboardInterrupt:
        ui.say(
            f"sweep {state.sweep_id} interrupted; jobs keep running on Everest. Resume with:"
            f" invoke sweep --resume {state.directory}"
        )
        raise
