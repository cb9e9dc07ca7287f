"""One job from the terminal: submit, follow live, fetch outputs; status, cancel, resubmit."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from everbake import ui
from everbake.errors import EverbakeError
from everbake.everest import jobs
from everbake.everest.jobsapi import JobsApi
from everbake.everest.liveview import LiveView, Row
from everbake.everest.watch import Backoff, Patience, Tracker, format_elapsed

LOG_TAIL_LINES = 20
Say = Callable[[str], None]


@dataclass
class Outcome:
    job_id: str
    state: str
    last_status: str
    files: list[Path] = field(default_factory=list)
    preempted: bool = False

    @property
    def exit_code(self) -> int:
        return jobs.exit_code(self.state)


def submit(api: JobsApi, sub: jobs.Submission, uploads: dict[str, str] | None = None) -> str:
    """Upload the parameters and the data archive (each once when ``uploads`` caches
    them), submit, return the job id."""
    params_uri = upload_params(api, sub.params, uploads)
    data_uri = upload_data(api, sub.data, uploads)
    answer = api.submit(sub.app, sub.body(params_uri, data_uri))
    job_id = str(answer.get("id") or "")
    if not job_id:
        raise jobs.JobError(f"app {sub.app}: the server accepted the job but sent no id")
    return job_id


def upload_params(
    api: JobsApi, params: dict | None, uploads: dict[str, str] | None = None
) -> str | None:
    """The parameters as the app's params.json file input (app.py: "parameters")."""
    if params is None:
        return None
    text = json.dumps(params, indent=2, sort_keys=True) + "\n"
    key = "params.json sha256:" + hashlib.sha256(text.encode()).hexdigest()
    if uploads is not None and key in uploads:
        return uploads[key]
    with tempfile.TemporaryDirectory(prefix="everbake-params-") as tmp:
        path = Path(tmp) / jobs.PARAMS_FILE
        path.write_text(text, encoding="utf-8")
        uri = api.upload(path)
    if uploads is not None:
        uploads[key] = uri
    return uri


def upload_data(
    api: JobsApi, data: str | None, uploads: dict[str, str] | None = None
) -> str | None:
    if data is None or jobs.is_remote(data):
        return data
    if uploads is not None and data in uploads:
        return uploads[data]
    path = Path(data)
    if not path.is_file():
        raise jobs.JobError(f"{data}: the data archive is gone; put it back or change the input")
    with ui.phase(f"upload {path.name} ({_size(path.stat().st_size)})"):
        uri = api.upload(path)
    if uploads is not None:
        uploads[data] = uri
    return uri


def run_job(api: JobsApi, sub: jobs.Submission, runs_dir: Path, wait: bool = True) -> Outcome:
    job_id = submit(api, sub)
    ui.say(f"submitted job {job_id} (app {sub.app}, version {sub.version})")
    print(job_id, flush=True)  # at once: whatever happens next, the job can be found
    if not wait:
        return Outcome(job_id, "SUBMITTED", "")
    try:
        return follow(api, job_id, runs_dir)
    except KeyboardInterrupt:
        ui.say(
            f"job {job_id} keeps running on Everest: 'invoke job-status {job_id}', "
            f"'invoke fetch-job {job_id}' or 'invoke cancel-job {job_id}'"
        )
        raise


def follow(api: JobsApi, job_id: str, runs_dir: Path, view: LiveView | None = None) -> Outcome:
    """Watch the job to its end, then fetch its outputs into runs/<job-id>/."""
    tracker = watch(api, Tracker(job_id), view or LiveView())
    return finish(api, tracker, runs_dir / job_id)


def watch(api: JobsApi, tracker: Tracker, view: LiveView, name: str = "job") -> Tracker:
    backoff = Backoff.from_env()
    patience = Patience(
        f"job {tracker.job_id}",
        f"the job still runs on Everest: follow it with 'invoke job-status {tracker.job_id}'",
    )
    changed = True
    while True:
        try:
            changed = tracker.update(api.job(tracker.job_id)) or changed
            patience.ok()
        except EverbakeError as exc:
            patience.failed(exc)
        view.show([Row(name, tracker)], force=changed)
        if tracker.done:
            return tracker
        time.sleep(backoff.next(changed))
        changed = False


def finish(
    api: JobsApi, tracker: Tracker, dest: Path, say: Say = ui.say, quiet: bool = False
) -> Outcome:
    """Fetch the ended job's outputs and its final status; ``quiet`` (sweeps) prints
    neither the paths nor the log tail, which the summary replaces."""
    files = fetch_outputs(api, tracker.doc, dest, say, print_paths=not quiet)
    status_file = dest / jobs.STATUS_FILE
    if status_file.is_file():
        tracker.note_final_status(status_file.read_text(encoding="utf-8", errors="replace"))
    elapsed = format_elapsed(tracker.elapsed())
    say(f"job {tracker.job_id}: {tracker.state} after {elapsed}: {tracker.last_status or '-'}")
    if tracker.state == "FAILED" and not quiet:
        show_log_tail(api, tracker.job_id, say)
    return Outcome(tracker.job_id, tracker.state, tracker.last_status, files, tracker.preempted)


def fetch_outputs(
    api: JobsApi, doc: dict, dest: Path, say: Say = ui.say, print_paths: bool = True
) -> list[Path]:
    """Download every file output of the job into ``dest``; then each path on stdout."""
    outputs = jobs.output_files(doc)
    if not outputs:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for n, (name, uri) in enumerate(outputs, 1):
        target = dest / Path(name).name  # never a path from the server
        say(f"  download {n}/{len(outputs)}: {target.name}")
        size = api.download(uri, target)
        say(f"  {target} ({_size(size)})")
        done.append(target)
    for path in done if print_paths else []:
        print(path, flush=True)
    return done


def show_log_tail(api: JobsApi, job_id: str, say: Say = ui.say) -> None:
    try:
        log = api.log(job_id)
    except EverbakeError as exc:
        say(f"job {job_id}: no log ({exc})")
        return
    lines = log.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
    if lines:
        say(f"--- last {len(lines)} lines of the job's log ---")
        for line in lines:
            say(f"  {line}")


def job_status(api: JobsApi, job_id: str) -> Outcome:
    tracker = Tracker(job_id)
    tracker.update(api.job(job_id))
    doc = tracker.doc
    print(f"job {job_id}: {tracker.state}")
    for key in ("name", "appAlias", "appId"):
        if doc.get(key):
            print(f"  {key}: {doc[key]}")
    if tracker.last_status:
        print(f"  status: {tracker.last_status}")
    for name, uri in jobs.output_files(doc):
        print(f"  output {name}: {uri}")
    return Outcome(job_id, tracker.state, tracker.last_status)


def fetch_job(api: JobsApi, job_id: str, runs_dir: Path) -> Outcome:
    tracker = Tracker(job_id)
    tracker.update(api.job(job_id))
    if not tracker.done:
        raise jobs.JobError(
            f"job {job_id} is {tracker.state}: outputs exist once it ends; "
            f"follow it with 'invoke job-status {job_id}'"
        )
    return finish(api, tracker, runs_dir / job_id)


def cancel_job(api: JobsApi, job_id: str) -> str:
    api.cancel(job_id)
    state = str(api.job(job_id).get("state") or "?")
    ui.say(f"job {job_id}: cancel requested; now {state}")
    return state


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
