"""Everest jobs as data: states, exit codes, the inputs we submit, outputs, failures.

Job documents are what `GET /api/jobs/<id>` returns, read only as public clients
read them: `id`, `name`, `appId`/`appAlias` (older servers: `app`), `inputs`,
`state`, and `result` when present (vvvol/sptp everest.py `Job.fromjson`;
distcomp/pyomo-everest everest_api/everest.py at aadf9c8 reads `app`); `info`
only once a job FAILED or was CANCELLED (the-templet-project/templet
lib/everest.hpp `_wait_loop_body`). No public client reads the job's resources,
so everbake keeps its own record of each submission (submissions.py).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError
from everbake.everest.app import INPUT_DATA, INPUT_DEBUG, INPUT_PARAMS, INPUT_VERSION

# shared/facts/everest.md, "Jobs"
STATES = ("SUBMITTED", "DEFERRED", "READY", "SCHEDULED", "RUNNING", "DONE", "FAILED", "CANCELLED")
TERMINAL = ("DONE", "FAILED", "CANCELLED")
EXIT_CODES = {"DONE": 0, "FAILED": 1, "CANCELLED": 130}
# templet reads `info` on these states only; everbake does the same.
INFO_STATES = ("FAILED", "CANCELLED")

PARAMS_FILE = "params.json"  # the name the parameters are uploaded under
STATUS_FILE = "status.txt"  # the runtime's last status: an output of every task
RESULT_FILE = "result.json"  # the job's `result` as Everest sent it, beside the outputs

# Why a FAILED job failed, as far as everbake can tell.
PREEMPTED = "preempted"  # the runtime said the cloud took the VM back
NO_OUTPUTS = "no outputs"  # nothing came back: the VM may have vanished

# The runtime's final status after SIGTERM, i.e. the cloud took the VM back
# (runtime/everest_runtime/runner.py: _final_status "preempted: SIGTERM after ...",
# and the watch's "preemption notice: ..." status that precedes it).
_PREEMPTED = re.compile(r"^\s*(preempted: |preemption notice: )")
_JOB_ID = re.compile(r"^[0-9a-f]{24}$")


class JobError(EverbakeError):
    """A job that cannot be submitted, found or fetched."""


def exit_code(state: str) -> int:
    """What the task exits with for a job that ended in ``state`` (1 for the unknown)."""
    return EXIT_CODES.get(state, 1)


def is_preempted(statuses: list[str]) -> bool:
    """Did the runtime say the VM was taken away (in any status message seen)?"""
    return any(_PREEMPTED.match(s or "") for s in statuses)


def info(job: dict[str, Any]) -> str:
    """The job's `info`, where public clients read it: once FAILED or CANCELLED."""
    value = job.get("info") if job.get("state") in INFO_STATES else None
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value) if value not in (None, "", {}, []) else ""


def app_of(job: dict[str, Any]) -> str:
    """The app a job document names: appAlias, else appId (sptp Job.fromjson), else
    the older servers' `app` (pyomo-everest at aadf9c8)."""
    for key in ("appAlias", "appId", "app"):
        if job.get(key):
            return str(job[key])
    return ""


def is_job_id(ref: str) -> bool:
    return bool(_JOB_ID.match(ref))


def job_name(app: str, prefix: str = "") -> str:
    """A unique job name (app or prefix, UTC time, a short random part): a
    submission whose answer was lost is found again by it."""
    base = prefix or app.rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-") or "job"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Submission:
    """What one job submits: POST /api/apps/<app> with {name, inputs, resources}
    (sptp everest.py `__submitJob`). Parameters and data are uploaded first;
    their URIs go into the inputs."""

    app: str
    version: str
    name: str  # unique (job_name): the way back to a job whose answer was lost
    params: dict[str, Any] | None = None  # None: keep the original's parameters file
    data: str | None = None  # a local archive (uploaded first) or an Everest file URI
    resource: str | None = None
    debug: bool | None = None  # None: keep the original's
    # A resubmission starts from the original job's inputs, so whatever is not
    # overridden (inputs we do not even know by name included) travels unchanged.
    original: dict[str, Any] = field(default_factory=dict)
    resubmission_of: str = ""  # the job this one runs again

    def inputs(self, params_uri: str | None, data_uri: str | None) -> dict[str, Any]:
        inputs = dict(self.original)
        inputs[INPUT_VERSION] = self.version
        if params_uri:
            inputs[INPUT_PARAMS] = params_uri
        if data_uri:
            inputs[INPUT_DATA] = data_uri
        if self.debug is not None or not self.original:
            inputs[INPUT_DEBUG] = "true" if self.debug else "false"
        return inputs

    def body(self, params_uri: str | None, data_uri: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "inputs": self.inputs(params_uri, data_uri)}
        if self.resource:
            body["resources"] = [self.resource]
        return body


def load_params(value: str, flag: str = "--params") -> dict[str, Any]:
    """``--params``: a JSON object given inline, or the path of a JSON file holding one."""
    text = value.strip()
    source = "the inline JSON"
    if not text.startswith("{"):
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise JobError(
                f"{flag} {value}: neither a JSON object nor a readable file ({exc.strerror})"
            ) from None
        source = str(path)
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise JobError(f"{flag}: {source} is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise JobError(f"{flag}: {source} must hold a JSON object of parameters")
    return params


def check_data(data: str | None, flag: str = "--data") -> str | None:
    """A local archive must exist before anything is submitted."""
    if data is None or is_file_uri(data):
        return data
    path = Path(data)
    if not path.is_file():
        raise JobError(f"{flag} {data}: no such file; give a .zip or .tar.gz input archive")
    return str(path.resolve())


def resubmission(
    original: dict[str, Any],
    *,
    job_id: str,
    resource_known: bool,
    version: str | None = None,
    params: dict[str, Any] | None = None,
    data: str | None = None,
    resource: str | None = None,
) -> Submission:
    """The same app, inputs and resource as ``original`` (everbake's record of a
    submission, or a job document) with only the given ones changed, under a new
    unique name."""
    inputs = original.get("inputs")
    if not isinstance(inputs, dict) or INPUT_VERSION not in inputs:
        raise JobError(
            f"job {job_id}: its inputs have no '{INPUT_VERSION}'; it was not submitted "
            "to an app exported by everbake, so resubmit cannot rebuild it"
        )
    app = str(original.get("app") or "") if resource_known else app_of(original)
    if not app:
        raise JobError(f"job {job_id}: the job document names no app (appAlias, appId, app)")
    resources = original.get("resources") if resource_known else None
    old_resource = resources[0] if isinstance(resources, list) and resources else None
    return Submission(
        app=app,
        version=version or str(inputs[INPUT_VERSION]),
        name=job_name(app),
        params=params,
        data=data,
        resource=resource or old_resource,
        original=dict(inputs),
        resubmission_of=job_id,
    )


def is_file_uri(value: Any) -> bool:
    """A file's value in job inputs and outputs, rather than a local archive or a plain
    value: a path under /api/files/ on the Everest host, or a full URL (sptp
    everest.py getFile fetches anything else as a URL; uploads may answer either)."""
    return isinstance(value, str) and value.startswith(("/api/files/", "http://", "https://"))


def output_files(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, URI) of every file output in the job's ``result``; values that are
    no file (numbers, text: templet's number outputs) stay in result.json only."""
    result = job.get("result") or {}
    found: list[tuple[str, str]] = []
    if not isinstance(result, dict):
        return found
    for key, value in result.items():
        for item in value if isinstance(value, list) else [value]:
            if is_file_uri(item):
                found.append((_local_name(item, str(key)), item))
    return found


def failure(state: str, statuses: list[str], files: list[Any]) -> str:
    """Why a job FAILED: PREEMPTED (the runtime said so), NO_OUTPUTS (nothing came
    back), or "" (the model or the task failed)."""
    if state != "FAILED":
        return ""
    if is_preempted(statuses):
        return PREEMPTED
    return "" if files else NO_OUTPUTS


def _local_name(uri: str, output: str) -> str:
    """The file name to save ``uri`` under: its last path segment, decoded, never a
    path (a server's '..' or 'a/b' must not leave the job's directory)."""
    path = urllib.parse.urlsplit(uri).path if "://" in uri else uri.split("?", 1)[0]
    name = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1]).replace("\\", "/")
    name = name.rsplit("/", 1)[-1]
    if name in ("", ".", "..") or name.startswith("."):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", output).lstrip(".") or "output"
    return name
