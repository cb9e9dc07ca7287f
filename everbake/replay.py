"""invoke replay: an Everest job run again on this machine, as it ran, and compared.

From a job's directory (runs/<job-id>/, as fetch-job, run-job or a sweep leave
it): its provenance.json (what the task says produced it) and everbake's
submission record (what was sent). Then:

1. the image: the local build with the job's image fingerprint; else, when the
   spec as it is now still makes that fingerprint, bake it; else stop and name
   the inputs that differ (everbake.image_packages), unless ``any_image`` asks to
   run in the spec's current image (baked when missing) anyway;
2. the inputs: the parameters and the data downloaded from Everest (the URIs in
   the submission record), each checked against the sha256 the task recorded;
   the value inputs (version, debug) as they were, debug on with ``debug``;
3. the task: run-local --app with the app exported for that image and the model
   checkout (its commit checked against the job's when both are known);
4. the comparison: the last status, the exit status, metrics.json when the model
   wrote one, and the digest of every file in results.zip; "same", or each
   difference, also written to <run>/replay.json.

Works for failed jobs too: whatever outputs the job left are compared.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from everbake import image_packages
from everbake.bake import build_spec
from everbake.errors import EverbakeError
from everbake.everest import submissions
from everbake.everest.app import export_app
from everbake.everest.runapp import run_app
from everbake.files import sha256_file, write_json
from everbake.fingerprint import built_from
from everbake.image_inputs import would_be_record
from everbake.image_lookup import all_records
from everbake.providers import DEFAULT, get
from everbake.records import local_up_to_date
from everbake.runlocal import DEFAULT_MODEL
from everbake.settings import Settings
from everbake.spec import ImageSpec
from everbake.ui import phase, say

PROVENANCE = "provenance.json"  # the runtime's everest_runtime.provenance.FILE
REPORT = "replay.json"
METRICS = "metrics.json"
RESULTS = "results.zip"
STATUS = "status.txt"


class Downloader(Protocol):
    def download(self, uri: str, dest: Path) -> int: ...


class ReplayError(EverbakeError):
    pass


@dataclass
class Replayed:
    job_id: str
    image: str
    run_dir: Path
    same: bool
    differences: list[str] = field(default_factory=list)
    image_changes: list[str] = field(default_factory=list)  # with any_image: what changed
    notes: list[str] = field(default_factory=list)


def read_job(job_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(provenance, submission record) of a job directory; one line naming what lacks."""
    if not job_dir.is_dir():
        raise ReplayError(
            f"{job_dir}: no such job directory; fetch the job first "
            "(invoke fetch-job <id>, or replay --job <id>)"
        )
    provenance = _json(job_dir / PROVENANCE)
    if provenance is None:
        raise ReplayError(
            f"{job_dir / PROVENANCE}: missing or unreadable; the job ran with an app exported "
            "before tasks wrote provenance (export it again: invoke export-app --update), "
            "or it failed before its task started"
        )
    record = _json(job_dir / submissions.RECORD_FILE)
    if record is None:
        raise ReplayError(
            f"{job_dir / submissions.RECORD_FILE}: missing; replay needs everbake's record of "
            "what was submitted (jobs submitted by run-job, resubmit or sweep have one)"
        )
    return provenance, record


def job_image(provenance: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The job's image as diff-images describes one: its build record when one is
    here (any provider), else what its provenance says."""
    fp = (provenance.get("image") or {}).get("fingerprints", {}).get("image")
    for _, record in all_records(settings.dist_root_of_repo()):
        if fp and record.get("fingerprints", {}).get("image") == fp:
            return image_packages.describe(record)
    image = provenance.get("image") or {}
    packages = provenance.get("packages") or {}
    return {
        "image": image.get("name"),
        "provider": image.get("provider"),
        "spec": image.get("spec"),
        "fingerprints": dict(image.get("fingerprints") or {}),
        "solvers": {n: s.get("version") for n, s in (provenance.get("solvers") or {}).items()},
        # Not known from a task: left out of the comparison (image_packages.diff: None).
        "python_packages": None,
        "scripts": None,
        "runtime": None,
        "runtime_version": (provenance.get("runtime") or {}).get("version"),
        "agent": (provenance.get("agent") or {}).get("content"),
        "base_os": None,
        "packages": packages if packages else None,
    }


def choose_image(
    provenance: Mapping[str, Any], settings: Settings, any_image: bool
) -> tuple[str, list[str]]:
    """The local image to replay in, and (with ``any_image``) how it differs."""
    image = provenance.get("image") or {}
    fp = str((image.get("fingerprints") or {}).get("image") or "")
    dist = settings.dist_root_of_repo()
    for path, record in all_records(dist):
        if path.parent.name == DEFAULT and local_up_to_date(record, fp):
            say(f"replay: the job's image {record['image']} is here ({path})")
            return str(record["image"]), []
    spec = _spec_of(image, settings)
    agent = (provenance.get("agent") or {}).get("content")
    if fp and built_from(spec, fp, agent):
        with phase(f"replay: bake {image.get('name')} from spec {spec.name} (same fingerprint)"):
            outcome = build_spec(spec, get(DEFAULT), settings=settings)
        baked = outcome.record.get("fingerprints", {}).get("image")
        if baked == fp or any_image:  # e.g. an agent source reachable now and not then
            changes = [] if baked == fp else [f"image fingerprint {fp[:12]} → {str(baked)[:12]}"]
            return outcome.image, changes
        raise ReplayError(
            f"spec {spec.name} baked {outcome.image}, not the job's {image.get('name')} "
            "(its agent source answers differently now); replay --any-image to run in it"
        )
    current = image_packages.describe(would_be_record(spec, DEFAULT, agent))
    found = image_packages.diff(job_image(provenance, settings), current)
    changes = image_packages.lines(found)
    if not any_image:
        named = "; ".join(changes) if changes else "no input named differs (fingerprints do)"
        raise ReplayError(
            f"the job ran in image {image.get('name')} (fingerprint {fp[:12]}), which is not "
            f"here, and spec {spec.name} makes {current['image']} now: {named}. Check out the "
            "spec as it was and replay again, or replay --any-image to run in the current image"
        )
    with phase(f"replay --any-image: the current image of spec {spec.name}"):
        outcome = build_spec(spec, get(DEFAULT), settings=settings)
    record = image_packages.describe(outcome.record)
    return outcome.image, image_packages.lines(
        image_packages.diff(job_image(provenance, settings), record)
    )


def _spec_of(image: Mapping[str, Any], settings: Settings) -> ImageSpec:
    name = image.get("spec")
    if not name:
        raise ReplayError(
            "the job's provenance names no image spec: it ran outside an everbake image"
        )
    try:
        return settings.load_spec(str(name))
    except EverbakeError as exc:
        raise ReplayError(f"the job's image spec {name}: {exc}") from None


def stage_inputs(
    job_dir: Path,
    dest: Path,
    provenance: Mapping[str, Any],
    record: Mapping[str, Any],
    api: Downloader | None,
    debug: bool,
) -> Path:
    """A run-local --app job directory with the job's own inputs, checked by digest."""
    dest.mkdir(parents=True, exist_ok=True)
    sent = dict(record.get("inputs") or {})
    recorded = provenance.get("inputs") or {}
    values: dict[str, Any] = {}
    for name, default in (("parameters", "params.json"), ("data", "data.archive")):
        uri = sent.get(name)
        if not uri:
            continue
        want = (recorded.get(name) or {}).get("sha256")
        target = dest / str((recorded.get(name) or {}).get("file") or default)
        if api is None:
            raise ReplayError(
                f"the job's {name} are on Everest ({uri}); set EVEREST_URL and log in "
                "(invoke everest-login) so replay can download them"
            )
        say(f"replay: download the job's {name} ({uri})")
        api.download(str(uri), target)
        got = sha256_file(target)
        if want and got != want:
            raise ReplayError(
                f"the job's {name} on Everest ({uri}) is not what its task read: sha256 "
                f"{got[:12]}, provenance says {want[:12]}"
            )
        values[name] = target.name
    for name, value in sent.items():
        if name not in ("parameters", "data"):
            values[name] = value
    if debug:
        values["debug"] = True
    write_json(dest / "inputs.json", values)
    return dest


def check_model(model: Path, provenance: Mapping[str, Any]) -> str:
    """A note on the model replayed; refuses a git checkout at another commit."""
    sha = str((provenance.get("model") or {}).get("sha") or "")
    source = str((provenance.get("model") or {}).get("source") or "")
    if not sha:
        return f"model: the job ran a local source ({source}); replayed with {model}"
    done = subprocess.run(
        ["git", "-C", str(model), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    head = done.stdout.strip() if done.returncode == 0 else ""
    if not head:
        return f"model: the job ran commit {sha[:12]}; {model} is no git checkout, not checked"
    if head != sha:
        raise ReplayError(
            f"--model {model} is at commit {head[:12]}, the job ran {sha[:12]} ({source}); "
            f"git -C {model} checkout {sha} and replay again"
        )
    return f"model: commit {sha[:12]}, as the job ran"


def compare(job_dir: Path, run_dir: Path) -> list[str]:
    """What differs between the job's outputs and the replay's ([] when the same)."""
    out = []
    old, new = _text(job_dir / STATUS), _text(run_dir / STATUS)
    if _untimed(old) != _untimed(new):
        out.append(f"last status: {old!r} -> {new!r}")
    old_exit = ((_json(job_dir / PROVENANCE) or {}).get("task") or {}).get("exit_code")
    new_exit = ((_json(run_dir / PROVENANCE) or {}).get("task") or {}).get("exit_code")
    if old_exit != new_exit:
        out.append(f"exit status: {old_exit} -> {new_exit}")
    old_metrics, new_metrics = _metrics(job_dir), _metrics(run_dir)
    if old_metrics is not None or new_metrics is not None:
        for key in sorted(set(old_metrics or {}) | set(new_metrics or {})):
            a, b = (old_metrics or {}).get(key), (new_metrics or {}).get(key)
            if a != b:
                out.append(f"metric {key}: {a!r} -> {b!r}")
    old_files, new_files = _digests(job_dir / RESULTS), _digests(run_dir / RESULTS)
    for name in sorted(set(old_files) | set(new_files)):
        if name not in new_files:
            out.append(f"result {name}: only in the job's results")
        elif name not in old_files:
            out.append(f"result {name}: only in the replay's results")
        elif old_files[name] != new_files[name]:
            out.append(
                f"result {name}: differs (sha256 {old_files[name][:12]} -> {new_files[name][:12]})"
            )
    return out


def replay(
    job_dir: Path,
    *,
    settings: Settings | None = None,
    api: Downloader | None = None,
    model: Path | None = None,
    any_image: bool = False,
    debug: bool = False,
) -> Replayed:
    settings = settings or Settings()
    provenance, record = read_job(job_dir)
    job_id = str(record.get("job") or job_dir.name)
    image, image_changes = choose_image(provenance, settings, any_image)
    model_path = (model or settings.repo_root / DEFAULT_MODEL).resolve()
    notes = [check_model(model_path, provenance)]
    work = job_dir / "replay"
    inputs = stage_inputs(job_dir, work / "inputs", provenance, record, api, debug)
    exported = export_app(image, output=work / "app", settings=settings)
    outcome = run_app(
        exported.directory,
        inputs,
        image=image,
        model=model_path,
        runs_dir=work / "runs",
        settings=settings,
    )
    differences = compare(job_dir, outcome.run_dir)
    if debug and (outcome.run_dir / "debug.zip").is_file():
        notes.append(f"debug archive: {outcome.run_dir / 'debug.zip'}")
    done = Replayed(
        job_id, image, outcome.run_dir, not differences, differences, image_changes, notes
    )
    write_json(
        outcome.run_dir / REPORT,
        {
            "job": job_id,
            "image": image,
            "same": done.same,
            "differences": differences,
            "image_changes": image_changes,
            "notes": notes,
        },
    )
    return done


def report_lines(done: Replayed) -> list[str]:
    lines = [f"replay of job {done.job_id} in {done.image}: {done.run_dir}"]
    lines += [f"  {note}" for note in done.notes]
    if done.image_changes:
        lines.append("  image: not the job's; what changed:")
        lines += [f"    {line}" for line in done.image_changes]
    if done.same:
        lines.append("same")
    else:
        lines.append("differs:")
        lines += [f"  {line}" for line in done.differences]
    return lines


# The runtime's own statuses give times ("failed: exit 2 after 0.3 s"): no run
# repeats them, so they are not compared.
_SECONDS = re.compile(r"\b\d+(?:\.\d+)? s\b")


def _untimed(status: str | None) -> str | None:
    return None if status is None else _SECONDS.sub("… s", status)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _digests(archive: Path) -> dict[str, str]:
    """Name -> sha256 of every file in a results.zip ({} without one)."""
    if not archive.is_file():
        return {}
    try:
        with zipfile.ZipFile(archive) as zf:
            return {
                info.filename: hashlib.sha256(zf.read(info)).hexdigest()
                for info in zf.infolist()
                if not info.is_dir()
            }
    except (OSError, zipfile.BadZipFile) as exc:
        return {f"({archive.name} unreadable: {exc})": ""}


def _metrics(where: Path) -> dict[str, Any] | None:
    """metrics.json beside the outputs, else the first one in results.zip."""
    found = _json(where / METRICS)
    if found is not None:
        return found
    archive = where / RESULTS
    if not archive.is_file():
        return None
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in sorted(zf.namelist()):
                if name.rsplit("/", 1)[-1] == METRICS:
                    data = json.loads(zf.read(name))
                    return data if isinstance(data, dict) else None
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return None
