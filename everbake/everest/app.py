"""export-app: the Everest application that runs on an everbake image.

The descriptor follows Everest's own export format, as two public exports of
real applications show it (distcomp/SvF svf-service/svf-remote.zip and
the-templet-project/templet samples/parsweep/everest-app/everest-app.zip;
shared/facts/everest.md "Application descriptor"): the keys those exports have
and no other, ``required`` on every input and output, a fixed command, and the
job's values passed to the task as files through ``inputMappings``.
``application.schema.json`` (beside this module) describes that format.

One directory per export, replaced in one step, laid out as the zip the web UI
imports, plus everbake's own metadata and the zip itself::

    application.json            the descriptor (the zip's root)
    ApplicationFiles/bootstrap.sh  the application file the command runs
    everbake.json               image, fingerprint, spec, the allowedCommands regex
    <spec>-app.zip              application.json + ApplicationFiles/

The command is checked against the ``security.allowedCommands`` of the agent
config baked into the image.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import jinja2
import jsonschema

from everbake.errors import EverbakeError
from everbake.everest import agentconf
from everbake.everest.agentconf import AppError
from everbake.everest.appsync import update_app
from everbake.everest.client import URL_FIX
from everbake.everest.token import client_for
from everbake.files import write_atomic, write_json
from everbake.providers import DEFAULT
from everbake.providers import get as get_provider
from everbake.provision_env import secret_path
from everbake.records import find_build, settings_with
from everbake.settings import Settings
from everbake.spec import ImageSpec

APP_FILE = "application.json"
META_FILE = "everbake.json"  # everbake's own metadata: never inside the descriptor
FILES_DIR = "ApplicationFiles"  # the zip's folder of application files (both public exports)
BOOTSTRAP = "bootstrap.sh"
SCHEMA_FILE = "application.schema.json"
# The command is one fixed line, as in every public export: no placeholders.
COMMAND = f"bash {BOOTSTRAP}"
# The descriptor's own version (both public exports carry a semver string).
APP_VERSION = "1.0.0"

# Inputs: the job's values reach the task as files (templet maps its number
# inputs r, s, b to rho.txt, sigma.txt, beta.txt); bootstrap.sh reads them.
INPUT_VERSION, INPUT_PARAMS, INPUT_DATA, INPUT_DEBUG = "version", "parameters", "data", "debug"
INPUT_FILES = {
    INPUT_VERSION: "input-version.txt",
    INPUT_PARAMS: "params.json",  # the runner's default --params-file
    INPUT_DATA: "data.archive",  # the runner detects zip or tar by content, not by name
    INPUT_DEBUG: "input-debug.txt",
}

# Outputs: parameter -> (file in the task directory, what it is, written by every
# task). The runtime's README, "Task directory", says which files it writes;
# stdout and stderr are the agent's captures (both public exports map them).
# Only some tasks write results.zip (a model that failed early has none),
# debug.zip (debug=true), the chart and metrics.json (the runtime's copy of the
# model's out/metrics.json, when the model writes one): required false, so a job
# without them does not fail for that.
OUTPUT_FILES = {
    "results": ("results.zip", "the files the model's everest.toml lists as results", False),
    "stdout": ("stdout", "the task's standard output", True),
    "stderr": ("stderr", "the task's standard error", True),
    "debug_archive": ("debug.zip", "logs, statistics and parameters, with debug=true", False),
    "model_version": ("version.txt", "the model's version: ref, short SHA, date, title", True),
    "status": ("status.txt", "the last status message", True),
    "stats": ("stats.json", "peak memory, CPU seconds, wall time, utilisation", True),
    "stats_csv": ("stats.csv", "CPU and memory samples over time", True),
    "stats_chart": ("stats.svg", "CPU and memory over time as a chart, for a browser", False),
    "metrics": ("metrics.json", "the model's own metrics: a flat JSON object", False),
    "provenance": ("provenance.json", "what produced the result: image, packages, model", False),
}
MODEL_SOURCE_SECRET = "gitlab_token"  # the spec's secret holding the GitLab token
DEFAULT_GITLAB_URL = "https://gitlab.com"


@dataclass(frozen=True)
class Exported:
    directory: Path
    files: list[str]
    image: str
    agent_config: str  # how the agent config was found, one line
    action: str = ""  # with --update: unchanged, updated, would update
    diff: list[str] = field(default_factory=list)  # with --update: what differed


def _file(title: str, description: str, required: bool) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "string",
        "format": "uri",
        "required": required,
    }


def _value(title: str, description: str, required: bool) -> dict[str, Any]:
    return {"title": title, "description": description, "type": "string", "required": required}


def requirements(spec: ImageSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """``config.resourceRequirements`` from the spec's [resource]: one node per task,
    the machine's cores shared by its task slots, its memory per core where the
    provider's table says it. Nothing the user may override per job: the
    resource's VMs are what they are."""
    try:
        provider = get_provider(str(record.get("provider") or DEFAULT))
        machine = provider.resource_fields(spec, record).get("machine") or {}
    except EverbakeError:  # no Everest resource runs this provider's images (local)
        machine = {}
    cores = int(machine.get("cores") or 0)
    per_task = max(1, cores // max(1, spec.resource.task_slots)) if cores else 1
    memory = float(machine.get("memory_gb") or 0)
    per_core = max(1, int(memory // cores)) if memory and cores else 1

    def fixed(value: int) -> dict[str, Any]:
        return {"defaultValue": value, "allowOverride": False}

    # timeLimit: the spec sets none; 1, as in both public exports (its unit is not public).
    return {
        "nodes": fixed(1),
        "coresPerNode": fixed(per_task),
        "memoryPerCore": fixed(per_core),
        "timeLimit": fixed(1),
    }


def metadata(spec: ImageSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """everbake.json: what the descriptor must not hold (image, fingerprint, spec)."""
    return {
        "image": image_of(record),
        "fingerprint": (record.get("fingerprints") or {}).get("image", ""),
        "spec": spec.name,
        "provider": str(record.get("provider") or DEFAULT),
        "command": COMMAND,
        "allowed_command": agentconf.suggest(COMMAND),
        "files": [f"{FILES_DIR}/{BOOTSTRAP}"],
        "input_files": INPUT_FILES,
    }


def image_of(record: Mapping[str, Any]) -> str:
    return str(record.get("image_name") or record.get("image"))


def application(spec: ImageSpec, record: Mapping[str, Any], *, project: str = "") -> dict[str, Any]:
    """The application descriptor for ``spec``'s image of ``record``, in Everest's
    export format (``application.schema.json``)."""
    image = image_of(record)
    fingerprint = (record.get("fingerprints") or {}).get("image", "")
    source = f"GitLab project `{project}`" if project else "the model's GitLab project"
    what = spec.description or spec.name
    description = "\n".join(
        [
            f"{what}.",
            "",
            f"Runs a model from {source} at a version on the everbake image `{image}`",
            f"(spec `{spec.name}`, fingerprint `{fingerprint[:16]}`).",
            "",
            "- **version**: a commit SHA, tag or branch of the model's repository.",
            "- **parameters**: params.json, the model's parameters as a JSON object.",
            "- **data** (optional): a .zip or .tar.gz, unpacked into work/input.",
            "- **debug** (optional): `true` also returns debug.zip; default `false`.",
            "",
            f"Written by everbake export-app; `{BOOTSTRAP}` is the application's file.",
        ]
    )
    inputs = {
        INPUT_VERSION: _value(
            "Model version", "commit SHA, tag or branch of the model's repository", True
        ),
        INPUT_PARAMS: {
            **_file("Parameters (JSON)", "params.json: the model's parameters", True),
            "viewType": "input",  # a text file, as both public exports' viewType inputs
        },
        INPUT_DATA: _file("Input archive", "a .zip or .tar.gz, unpacked into work/input", False),
        INPUT_DEBUG: _value("Debug archive", "true also returns debug.zip (default false)", False),
    }
    outputs = {
        name: _file(name.replace("_", " "), what, required)
        for name, (_, what, required) in OUTPUT_FILES.items()
    }
    solvers = [solver.name for solver in spec.solvers]
    return {
        "alias": spec.name,
        "name": spec.name,
        "annotation": f"{what}: a model at a version on everbake image {image}",
        "keywords": ["everbake", spec.name, *solvers],
        "description": description,
        "inputs": inputs,
        "outputs": outputs,
        "type": "application",
        "config": {
            "command": COMMAND,
            "inputMappings": [
                {"param": name, "file": file, "pattern": ""} for name, file in INPUT_FILES.items()
            ],
            "outputMappings": [
                {"param": name, "file": file, "pattern": ""}
                for name, (file, _, _) in OUTPUT_FILES.items()
            ],
            "resourceRequirements": requirements(spec, record),
        },
        # everbake resubmits preempted jobs itself (sweep --retries, resubmit), knowing
        # a preemption from a model's failure; Everest retrying too would run a task
        # twice over. README "From image to Everest", Preemption.
        "retryFailedTasks": False,
        # Both public exports list no files (their ApplicationFiles/ are empty), so how
        # a file is listed is not public: bootstrap.sh travels in ApplicationFiles/.
        "files": [],
        "version": APP_VERSION,
    }


@cache
def schema() -> dict[str, Any]:
    text = package_files.files("everbake.everest").joinpath(SCHEMA_FILE).read_text()
    return dict(json.loads(text))


def schema_problems(descriptor: Any) -> list[str]:
    """One line per way ``descriptor`` leaves Everest's export format, by field."""
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(descriptor), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    return problems


def check_descriptor(descriptor: Any, where: str) -> None:
    problems = schema_problems(descriptor)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise AppError(f"{where}: not Everest's application format: {problems[0]}{more}")


def _token_settings(spec: ImageSpec) -> tuple[list[tuple[str, str]], str]:
    """bootstrap.sh's GitLab token settings (where to read it, never the value)."""
    secret = spec.secrets.get(MODEL_SOURCE_SECRET)
    if secret is None:
        return [], "from EVEREST_GITLAB_TOKEN when the environment sets it"
    if secret.mode == "metadata":
        key = secret.metadata_key
        return [("EVEREST_GITLAB_TOKEN_METADATA_KEY", key)], f"from the VM metadata key {key}"
    if secret.mode == "embed":
        path = secret_path(spec, MODEL_SOURCE_SECRET)
        return [("EVEREST_GITLAB_TOKEN_FILE", path)], f"from {path}, embedded in the image"
    env = secret.env or "EVEREST_GITLAB_TOKEN"
    return [("EVEREST_GITLAB_TOKEN_ENV", env)], f"from the environment variable {env}"


def _inside_double_quotes(value: object) -> str:
    text = str(value)
    if re.search(r'["$`\\\n}]', text):
        raise AppError(f"{text!r} cannot go into bootstrap.sh: no quotes, $, `, }} or backslashes")
    return text


def render_bootstrap(
    spec: ImageSpec, image: str, *, project: str = "", gitlab_url: str = DEFAULT_GITLAB_URL
) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("everbake.everest", ""),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    env.filters["dq"] = _inside_double_quotes
    settings, note = _token_settings(spec)
    return env.get_template(f"{BOOTSTRAP}.j2").render(
        image=image,
        spec=spec.name,
        command=COMMAND,
        gitlab_url=gitlab_url,
        project=project,
        token_settings=settings,
        token_note=note,
        version_file=INPUT_FILES[INPUT_VERSION],
        debug_file=INPUT_FILES[INPUT_DEBUG],
        params_file=INPUT_FILES[INPUT_PARAMS],
        data_file=INPUT_FILES[INPUT_DATA],
    )


def export_app(
    image: str,
    *,
    provider: str = DEFAULT,
    output: Path | None = None,
    project: str = "",
    gitlab_url: str = DEFAULT_GITLAB_URL,
    images_dir: Path | None = None,
    update: str = "",
    url: str = "",
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> Exported:
    """Write the export for ``image``'s newest ``provider`` build (nothing on a dry
    run) into ``output`` (default: <dist>/apps/<image name>); with ``update`` (id or
    owner/alias), bring that application on the Everest at ``url`` in line with it
    first. ``images_dir`` overrides the settings' one."""
    settings = settings_with(settings, images_dir)
    spec, record = find_build(image, provider, settings)
    image_name = image_of(record)
    app = application(spec, record, project=project)
    check_descriptor(app, f"the application of {spec.name}")
    config, how = agentconf.baked(spec, record)
    agentconf.check([app["config"]["command"]], config, spec.agent.config_template)
    directory = output or settings.dist_root(spec) / "apps" / image_name
    bootstrap = render_bootstrap(spec, image_name, project=project, gitlab_url=gitlab_url)
    action, diff = "", list[str]()
    if update:
        if not url:
            raise AppError(f"--update needs the Everest URL: {URL_FIX}")
        action, diff = update_app(client_for(url, env), update, app, dry_run=dry_run)
    zip_name = f"{spec.name}-app.zip"
    written = [] if dry_run else sorted([APP_FILE, META_FILE, f"{FILES_DIR}/{BOOTSTRAP}", zip_name])
    if not dry_run:
        _write_dir(directory, app, metadata(spec, record), bootstrap, zip_name)
    return Exported(directory, written, image_name, how, action, diff)


def _write_dir(
    directory: Path, app: Mapping[str, Any], meta: Mapping[str, Any], bootstrap: str, zip_name: str
) -> None:
    """Fill a new directory beside ``directory``, then swap it in: a failure leaves
    the old export as it was."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    new = directory.with_name(f".{directory.name}.{os.getpid()}.new")
    old = directory.with_name(f".{directory.name}.{os.getpid()}.old")
    shutil.rmtree(new, ignore_errors=True)
    try:
        (new / FILES_DIR).mkdir(parents=True)
        write_json(new / APP_FILE, app)
        write_json(new / META_FILE, meta)
        script = new / FILES_DIR / BOOTSTRAP
        write_atomic(script, bootstrap)
        script.chmod(0o755)
        # The layout of both public exports: application.json at the root and the
        # ApplicationFiles/ folder (there with bootstrap.sh in it).
        with zipfile.ZipFile(new / zip_name, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(new / APP_FILE, APP_FILE)
            archive.write(new / FILES_DIR, f"{FILES_DIR}/")
            archive.write(script, f"{FILES_DIR}/{BOOTSTRAP}")
        if directory.exists():
            if not directory.is_dir():
                raise EverbakeError(f"--output {directory} is a file; give a directory")
            os.rename(directory, old)
        os.rename(new, directory)
    finally:
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def load_app(directory: Path) -> dict[str, Any]:
    """An exported app directory's descriptor, checked against Everest's format."""
    path = directory / APP_FILE
    try:
        app = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AppError(
            f"--app {directory}: no {APP_FILE} in it; export one: invoke export-app"
        ) from None
    except ValueError as exc:
        raise AppError(f"{path}: not JSON ({exc}); export it again") from None
    check_descriptor(app, str(path))
    return dict(app)


def application_files(directory: Path) -> list[Path]:
    """The files of an exported app (its ApplicationFiles/ folder), sorted."""
    folder = directory / FILES_DIR
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
