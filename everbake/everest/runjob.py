"""One job from the terminal: submit, follow, fetch outputs; status, cancel, resubmit.

Every submission has a unique name (jobs.job_name) and, once Everest answered
with its id, a record in the job's directory (submissions.py). A submission
whose answer was lost is looked for by that name before anything else happens.
While a job runs, only its state and elapsed time are shown: no public client
reads a live status over REST, so the live status is on the job's page in the
web UI, and the last one comes back as status.txt.
"""

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
from everbake.everest import jobs, submissions
from everbake.everest.client import EverestUnavailable
from everbake.everest.jobsapi import JobsApi
from everbake.everest.liveview import LiveView, Row
from everbake.everest.watch import Backoff, Patience, Tracker, format_elapsed
from everbake.files import write_json

LOG_TAIL_LINES = 20
Say = Callable[[str], None]


@dataclass
class Outcome:
    job_id: str
    state: str
    last_status: str
    files: list[Path] = field(default_factory=list)
    reason: str = ""  # jobs.PREEMPTED, jobs.NO_OUTPUTS or "" (see jobs.failure)

    @property
    def exit_code(self) -> int:
        return jobs.exit_code(self.state)

    @property
    def preempted(self) -> bool:
        return self.reason == jobs.PREEMPTED


def prepare(api: JobsApi, sub: jobs.Submission, uploads: dict[str, str] | None = None) -> dict:
    """Upload the parameters and the data archive (each once when ``uploads`` caches
    them); the body to POST."""
    return sub.body(upload_params(api, sub.params, uploads), upload_data(api, sub.data, uploads))


def submit(api: JobsApi, sub: jobs.Submission, body: dict) -> str:
    """POST ``body``; the job id. A lost answer propagates (EverestUnavailable)."""
    answer = api.submit(sub.app, body)
    job_id = str(answer.get("id") or "")
    if not job_id:
        raise jobs.JobError(f"app {sub.app}: the server accepted the job but sent no id")
    return job_id


def submit_or_find(api: JobsApi, sub: jobs.Submission, body: dict) -> str:
    """Submit; when the answer is lost, find the job by its unique name instead of
    submitting it twice, or say exactly how to look for it."""
    try:
        return submit(api, sub, body)
    except EverestUnavailable as lost:
        try:
            found = api.find_by_name(sub.name)
        except EverbakeError:
            found = []
        why = f"Everest answered {lost.status}" if lost.status else "the connection broke"
        if len(found) == 1:
            ui.say(f"the answer to the submission was lost ({why}); found job {sub.name} by name")
            return str(found[0]["id"])
        raise jobs.JobError(
            f"the answer to submitting job {sub.name!r} to app {sub.app} was lost ({why}): the "
            f"job may exist on Everest. Look for it with 'invoke job-status {sub.name}' (job "
            f"names work where ids do), cancel it with 'invoke cancel-job {sub.name}', or "
            "find it by name in the web UI's job list, before submitting again"
        ) from None


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
    if data is None or jobs.is_file_uri(data):
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
    body = prepare(api, sub)
    job_id = submit_or_find(api, sub, body)
    record = submissions.write(
        runs_dir / job_id, job_id, api.client.url, body, sub.app, sub.resubmission_of
    )
    ui.say(f"submitted job {job_id} '{sub.name}' (app {sub.app}, version {sub.version})")
    ui.say(f"  record: {record}")
    if not sub.resource:
        ui.say("  resource: the app's (Everest chooses); give --resource to pin one")
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
    ui.say(
        f"job {job_id}: its state and elapsed time follow; its live status is on the job's "
        f"page in the Everest web UI ({api.client.url}), its last one comes as status.txt"
    )
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
    tracker.note_outputs(files)
    elapsed = format_elapsed(tracker.elapsed())
    say(f"job {tracker.job_id}: {tracker.state} after {elapsed}: {tracker.last_status or '-'}")
    if tracker.reason == jobs.NO_OUTPUTS:
        say(
            f"job {tracker.job_id} FAILED and delivered no outputs: its VM may have vanished "
            "(taken back without notice, or lost), or the task never started"
        )
    if tracker.state == "FAILED" and not quiet:
        show_log_tail(api, tracker.job_id, say)
    return Outcome(tracker.job_id, tracker.state, tracker.last_status, files, tracker.reason)


def fetch_outputs(
    api: JobsApi, doc: dict, dest: Path, say: Say = ui.say, print_paths: bool = True
) -> list[Path]:
    """Download every file output of the job into ``dest``; then each path on stdout.
    The whole ``result`` goes into result.json too (values that are no file)."""
    outputs = jobs.output_files(doc)
    if "result" in doc:
        dest.mkdir(parents=True, exist_ok=True)
        write_json(dest / jobs.RESULT_FILE, doc["result"])
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


def resolve(api: JobsApi, ref: str) -> str:
    """A job id from an id or the unique name everbake gave the job."""
    if jobs.is_job_id(ref):
        return ref
    found = api.find_by_name(ref)
    if not found:
        raise jobs.JobError(
            f"no job named {ref!r} on {api.client.url}: it was never created, or it was "
            "deleted; give a job id (24 hex) or another name"
        )
    if len(found) > 1:
        ids = ", ".join(str(doc["id"]) for doc in found)
        raise jobs.JobError(f"{len(found)} jobs are named {ref!r} ({ids}); give one id")
    return str(found[0]["id"])


def job_status(api: JobsApi, ref: str) -> Outcome:
    job_id = resolve(api, ref)
    tracker = Tracker(job_id)
    tracker.update(api.job(job_id))
    doc = tracker.doc
    print(f"job {job_id}: {tracker.state}")
    if doc.get("name"):
        print(f"  name: {doc['name']}")
    if jobs.app_of(doc):
        print(f"  app: {jobs.app_of(doc)}")
    if tracker.last_status:
        print(f"  info: {tracker.last_status}")
    elif not tracker.done:
        print(f"  live status: the job's page in the Everest web UI ({api.client.url})")
    for name, uri in jobs.output_files(doc):
        print(f"  output {name}: {uri}")
    return Outcome(job_id, tracker.state, tracker.last_status)


def fetch_job(api: JobsApi, ref: str, runs_dir: Path) -> Outcome:
    job_id = resolve(api, ref)
    tracker = Tracker(job_id)
    tracker.update(api.job(job_id))
    if not tracker.done:
        raise jobs.JobError(
            f"job {job_id} is {tracker.state}: outputs exist once it ends; "
            f"follow it with 'invoke job-status {job_id}'"
        )
    return finish(api, tracker, runs_dir / job_id)


def cancel_job(api: JobsApi, ref: str) -> str:
    job_id = resolve(api, ref)
    api.cancel(job_id)
    state = str(api.job(job_id).get("state") or "?")
    ui.say(f"job {job_id}: cancel requested; now {state}")
    return state


def resubmission(
    api: JobsApi,
    ref: str,
    runs_dir: Path,
    version: str | None = None,
    params: dict | None = None,
    data: str | None = None,
    resource: str | None = None,
) -> jobs.Submission:
    """What resubmitting ``ref`` sends: from everbake's record of it when there is one
    (the same resource), else from its job document (the resource is not in it)."""
    job_id = resolve(api, ref)
    record = submissions.find(runs_dir, job_id)
    if record is None:
        doc = api.job(job_id)
        if not resource:
            ui.say(
                f"job {job_id} has no everbake record in {runs_dir} (submitted elsewhere?): "
                "its resource is unknown, so Everest chooses one; give --resource to pin it"
            )
    return jobs.resubmission(
        record if record is not None else doc,
        job_id=job_id,
        resource_known=record is not None,
        version=version,
        params=params,
        data=data,
        resource=resource,
    )


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
