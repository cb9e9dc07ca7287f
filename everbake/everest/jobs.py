"""Everest jobs as data: states, exit codes, the inputs we submit, and preemption.

Job documents are what `GET /api/jobs/<id>` returns. Sources for their fields: the
public Python client (everest.py, copy in vvvol/sptp: `Job.fromjson` reads `id`,
`name`, `appId`, `appAlias`, `inputs`, `state`, `result`) and
shared/facts/everest.md (states; outputs at /api/files/jobs/<job>/<file>).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError

# shared/facts/everest.md, "Jobs"
STATES = ("SUBMITTED", "DEFERRED", "READY", "SCHEDULED", "RUNNING", "DONE", "FAILED", "CANCELLED")
TERMINAL = ("DONE", "FAILED", "CANCELLED")
EXIT_CODES = {"DONE": 0, "FAILED": 1, "CANCELLED": 130}

# The inputs of the application export-app writes (everbake/everest/app.py
# application(): "parameters" and "data" are files, "debug" is "true"/"false").
INPUT_VERSION = "version"
INPUT_PARAMS = "parameters"
INPUT_DATA = "data"
INPUT_DEBUG = "debug"
PARAMS_FILE = "params.json"

# guess: the job document's field with the task's live status message. The REST
# docs' job example is not public; the last status also arrives as status.txt.
LIVE_STATUS_FIELD = "info"
STATUS_FILE = "status.txt"

# The runtime's final status after SIGTERM, i.e. the cloud took the VM back
# (runtime/everest_runtime/runner.py: _final_status "preempted: SIGTERM after ...",
# and the watch's "preemption notice: ..." status that precedes it).
_PREEMPTED = re.compile(r"^\s*(preempted: |preemption notice: )")


class JobError(EverbakeError):
    """A job that cannot be submitted, found or fetched."""


def exit_code(state: str) -> int:
    """What the task exits with for a job that ended in ``state`` (1 for the unknown)."""
    return EXIT_CODES.get(state, 1)


def is_preempted(statuses: list[str]) -> bool:
    """Did the runtime say the VM was taken away (in any status message seen)?"""
    return any(_PREEMPTED.match(s or "") for s in statuses)


def live_status(job: dict[str, Any]) -> str:
    value = job.get(LIVE_STATUS_FIELD)
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True)
class Submission:
    """What one job submits: POST /api/apps/<app> with {name, inputs, resources}
    (everest.py `__submitJob`; facts "Apps"). Parameters and data are uploaded
    first; their URIs go into the inputs."""

    app: str
    version: str
    params: dict[str, Any] | None = None  # None: keep the original's parameters file
    data: str | None = None  # a local archive (uploaded first) or an Everest file URI
    resource: str | None = None
    name: str = ""
    debug: bool | None = None  # None: keep the original's
    # A resubmission starts from the original job's inputs, so whatever is not
    # overridden (inputs we do not even know by name included) travels unchanged.
    original: dict[str, Any] = field(default_factory=dict)

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
        inputs = self.inputs(params_uri, data_uri)
        body: dict[str, Any] = {"name": self.name or self.app, "inputs": inputs}
        if self.resource:
            body["resources"] = [self.resource]
        return body


def is_remote(data: str) -> bool:
    """An Everest file URI (as jobs' inputs hold them) rather than a local archive."""
    return data.startswith(("/api/files/", "http://", "https://"))


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
    if data is None or is_remote(data):
        return data
    path = Path(data)
    if not path.is_file():
        raise JobError(f"{flag} {data}: no such file; give a .zip or .tar.gz input archive")
    return str(path.resolve())


def resubmission(
    job: dict[str, Any],
    version: str | None = None,
    params: dict[str, Any] | None = None,
    data: str | None = None,
    resource: str | None = None,
) -> Submission:
    """The same inputs as ``job`` with only the given ones changed."""
    inputs = job.get("inputs")
    if not isinstance(inputs, dict) or INPUT_VERSION not in inputs:
        raise JobError(
            f"job {job.get('id')}: its inputs have no '{INPUT_VERSION}'; it was not submitted "
            "from an app exported by everbake, so resubmit cannot rebuild it"
        )
    app = job.get("appAlias") or job.get("appId")
    if not app:
        raise JobError(f"job {job.get('id')}: the job document names no app (appId/appAlias)")
    resources = job.get("resources")  # guess: not in the public client's Job.fromjson
    old_resource = resources[0] if isinstance(resources, list) and resources else None
    return Submission(
        app=str(app),
        version=version or str(inputs[INPUT_VERSION]),
        params=params,
        data=data,
        resource=resource or old_resource,
        name=str(job.get("name") or app),
        original=dict(inputs),
    )


def output_files(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, URI) of every file output in the job's ``result``.

    Outputs are `/api/files/jobs/<job>/<file>` (facts "Files"); everest.py's
    `getFile` fetches such URIs with the session's token.
    """
    result = job.get("result") or {}
    found: list[tuple[str, str]] = []
    if not isinstance(result, dict):
        return found
    for key, value in result.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("/api/files/"):
                found.append((_local_name(item, str(key)), item))
    return found


def _local_name(uri: str, output: str) -> str:
    """The file name to save ``uri`` under: its last segment, decoded, never a path
    (a server's '..' or 'a/b' must not leave the job's directory)."""
    name = urllib.parse.unquote(uri.rstrip("/").rsplit("/", 1)[-1]).replace("\\", "/")
    name = name.rsplit("/", 1)[-1]
    if name in ("", ".", "..") or name.startswith("."):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", output).lstrip(".") or "output"
    return name
