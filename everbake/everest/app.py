"""export-app: the Everest application that runs on an everbake image.

Writes into one directory (replaced in one step): ``application.json`` (the
descriptor: typed inputs and outputs, the fixed command, input and output
mappings; shared/facts/everest.md "Application descriptor"), ``bootstrap.sh``
(the application file the command runs) and ``<spec>-app.zip`` holding both,
for the web UI's import. The command is checked against the
``security.allowedCommands`` of the agent config baked into the image.
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
from pathlib import Path
from typing import Any

import jinja2

from everbake.errors import EverbakeError
from everbake.everest import agentconf
from everbake.everest.agentconf import AppError
from everbake.files import write_atomic
from everbake.providers import DEFAULT
from everbake.provision_env import secret_path
from everbake.records import find_build, settings_with
from everbake.settings import Settings
from everbake.spec import ImageSpec

APP_FILE = "application.json"
BOOTSTRAP = "bootstrap.sh"
PARAMS_FILE = "params.json"  # the runner's default --params-file
DATA_FILE = "data.archive"  # the runner detects zip or tar by content, not by name
# guess: Everest substitutes ${name} in the command with the job's input values
# (the command template syntax is not in the public docs).
COMMAND = f"bash {BOOTSTRAP} ${{version}} ${{debug}}"
# Values the allowedCommands check substitutes: any version bootstrap.sh accepts.
EXAMPLE_INPUTS = {"version": "v1.0", "debug": "false"}
MODEL_SOURCE_SECRET = "gitlab_token"  # the spec's secret holding the GitLab token
DEFAULT_GITLAB_URL = "https://gitlab.com"

# Outputs: parameter -> file in the task directory (the runtime's README, "Task
# directory"; stdout and stderr are captured there by the agent).
OUTPUT_FILES = {
    "results": ("results.zip", "the files the model's everest.toml lists as results"),
    "stdout": ("stdout", "the task's standard output"),
    "stderr": ("stderr", "the task's standard error"),
    "debug_archive": ("debug.zip", "logs, statistics and parameters, with debug=true"),
    "model_version": ("version.txt", "the model's version: ref, short SHA, date, title"),
    "status": ("status.txt", "the last status message"),
    "stats": ("stats.json", "peak memory, CPU seconds, wall time, utilisation"),
    "stats_csv": ("stats.csv", "CPU and memory samples over time"),
    "stats_chart": ("stats.svg", "CPU and memory over time as a chart (open it in a browser)"),
}


@dataclass(frozen=True)
class Exported:
    directory: Path
    files: list[str]
    image: str
    agent_config: str  # how the agent config was found, one line
    action: str = ""  # with --update: unchanged, updated, would update
    diff: list[str] = field(default_factory=list)  # with --update: what differed


def application(spec: ImageSpec, record: Mapping[str, Any], *, project: str = "") -> dict[str, Any]:
    """The application descriptor for ``spec``'s image of ``record``."""
    image = str(record.get("image_name") or record.get("image"))
    source = f"GitLab project {project}" if project else "the model's GitLab project"
    file_input = {"type": "string", "format": "uri"}
    return {
        "name": spec.name,
        "description": (
            f"{spec.description or spec.name}. Runs a model from {source} at a version on "
            f"everbake image {image}."
        ),
        "inputs": {
            "version": {
                "type": "string",
                "title": "Model version",
                "description": "commit SHA, tag or branch of the model's repository",
                "pattern": "^[A-Za-z0-9._/][A-Za-z0-9._/-]*$",
            },
            "parameters": {
                **file_input,
                "title": "Parameters (JSON)",
                "description": "params.json: the model's parameters as a JSON object",
            },
            "data": {
                **file_input,
                "title": "Input archive",
                "description": "a .zip or .tar.gz, unpacked into work/input (optional)",
                "optional": True,  # guess: how Everest marks an input as optional
            },
            "debug": {
                "type": "string",
                "enum": ["false", "true"],
                "default": "false",
                "title": "Debug archive",
                "description": "true also returns debug.zip",
            },
        },
        "outputs": {
            name: {**file_input, "title": name.replace("_", " "), "description": what}
            for name, (_, what) in OUTPUT_FILES.items()
        },
        "config": {
            "command": COMMAND,
            "inputMappings": [
                {"param": "parameters", "file": PARAMS_FILE},
                {"param": "data", "file": DATA_FILE},
            ],
            "outputMappings": [
                {"param": name, "file": file} for name, (file, _) in OUTPUT_FILES.items()
            ],
            # Preempted VMs end their tasks: run them again elsewhere.
            "retryFailedTasks": spec.resource.preemptible,
        },
        "everbake": {
            "image": image,
            "fingerprint": (record.get("fingerprints") or {}).get("image", ""),
            "spec": spec.name,
            "files": [BOOTSTRAP],
            "allowed_command": agentconf.suggest(expand(COMMAND, EXAMPLE_INPUTS)),
        },
    }


def expand(command: str, values: Mapping[str, str]) -> str:
    """``command`` with each ${name} replaced by the shell-quoted value."""
    out = command
    for name, value in values.items():
        out = out.replace(f"${{{name}}}", shlex.quote(str(value)))
    return out


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
        gitlab_url=gitlab_url,
        project=project,
        token_settings=settings,
        token_note=note,
        params_file=PARAMS_FILE,
        data_file=DATA_FILE,
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
    image_name = str(record.get("image_name") or record.get("image"))
    app = application(spec, record, project=project)
    config, how = agentconf.baked(spec, record)
    agentconf.check(
        [expand(app["config"]["command"], EXAMPLE_INPUTS)], config, spec.agent.config_template
    )
    directory = output or settings.dist_root(spec) / "apps" / image_name
    files = {
        APP_FILE: json.dumps(app, indent=2) + "\n",
        BOOTSTRAP: render_bootstrap(spec, image_name, project=project, gitlab_url=gitlab_url),
    }
    action, diff = "", list[str]()
    if update:
        from everbake.everest.appsync import update_app
        from everbake.everest.client import URL_FIX
        from everbake.everest.token import client_for

        if not url:
            raise AppError(f"--update needs the Everest URL: {URL_FIX}")
        action, diff = update_app(client_for(url, env), update, app, dry_run=dry_run)
    written = [] if dry_run else sorted([*files, f"{spec.name}-app.zip"])
    if not dry_run:
        _write_dir(directory, files, f"{spec.name}-app.zip")
    return Exported(directory, written, image_name, how, action, diff)


def _write_dir(directory: Path, files: Mapping[str, str], zip_name: str) -> None:
    """Fill a new directory beside ``directory``, then swap it in: a failure leaves
    the old export as it was."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    new = directory.with_name(f".{directory.name}.{os.getpid()}.new")
    old = directory.with_name(f".{directory.name}.{os.getpid()}.old")
    shutil.rmtree(new, ignore_errors=True)
    try:
        new.mkdir()
        for name, text in files.items():
            write_atomic(new / name, text)
        (new / BOOTSTRAP).chmod(0o755)
        # guess: the web UI imports a zip with application.json and the app's files at its root
        with zipfile.ZipFile(new / zip_name, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                archive.write(new / name, name)
        if directory.exists():
            if not directory.is_dir():
                raise EverbakeError(f"--output {directory} is a file; give a directory")
            os.rename(directory, old)
        os.rename(new, directory)
    finally:
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def load_app(directory: Path) -> dict[str, Any]:
    """An exported app directory's descriptor, checked for what run-local needs."""
    path = directory / APP_FILE
    try:
        app = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AppError(
            f"--app {directory}: no {APP_FILE} in it; export one: invoke export-app"
        ) from None
    except ValueError as exc:
        raise AppError(f"{path}: not JSON ({exc}); export it again") from None
    config = app.get("config") if isinstance(app, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("command"), str):
        raise AppError(f"{path}: config.command is missing; export it again")
    for key in ("inputMappings", "outputMappings"):
        for entry in config.get(key) or []:
            if (
                not isinstance(entry, dict)
                or "param" not in entry
                or not (entry.get("file") or entry.get("pattern"))
            ):
                raise AppError(f"{path}: config.{key} entry {entry!r} needs param and file")
    return dict(app)
