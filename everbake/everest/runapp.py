"""run-local --app: one task run the way Everest runs the exported application.

run-local's machinery (a scratch copy of the image, the agent stand-in, the
chroot, the task's process group) with these steps in the task directory instead
of its own, following the descriptor (Everest's export format, app.py):
- every ``inputMappings`` entry whose input has a value: a file input copied to
  its mapped name, a value input (version, debug) written there as text, as
  Everest passes values to a task (templet's export maps its number inputs to
  rho.txt, sigma.txt, beta.txt); the app's files (ApplicationFiles/) beside them;
- the fixed command, checked against the ``security.allowedCommands`` of the
  agent config in the image, run in the task directory as the task user; its
  stdout and stderr captured into the files ``stdout`` and ``stderr`` there, as
  the agent does, and shown live;
- outputs collected by the app's ``outputMappings`` into runs/<run-id>/, with
  ``outputs.json`` saying which parameter got which file; a ``required`` output
  the task did not write fails the run, as it would fail the job.

A job directory holds the inputs: ``inputs.json`` (values by input name; file
inputs as paths relative to the job) and, for what it leaves out, run-local's
layout: ``params.json`` for ``parameters``, ``data.zip``/``data.tar.gz`` for
``data``. ``version`` defaults to ``local``: the model comes from ``--model``
through EVEREST_MODEL_LOCAL, which everest-bootstrap prefers to GitLab.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError
from everbake.everest import agentconf
from everbake.everest.agentconf import AgentConfig, AppError
from everbake.everest.app import application_files, load_app
from everbake.files import read_json_object
from everbake.fingerprint import built_from
from everbake.runlocal import RUN_DIR_IN_IMAGE, RunOutcome, run_local
from everbake.settings import Settings
from everbake.spec import load_spec
from everbake.staging import render_agent_conf
from everbake.taskproc import Finished, run_in_group
from everbake.ui import say

TASK_DIR_IN_IMAGE = f"{RUN_DIR_IN_IMAGE}/task"
# run-local's job layout, for the inputs inputs.json leaves out.
JOB_FILES = {"parameters": ("params.json",), "data": ("data.zip", "data.tar.gz")}
DEFAULT_VALUES = {"version": "local"}
OUTPUTS_FILE = "outputs.json"


class AppSteps:
    """runlocal.TaskSteps for an exported application."""

    def __init__(self, app_dir: Path, settings: Settings | None = None) -> None:
        self.app_dir = app_dir
        self.settings = settings  # whose images dir holds the image's spec
        self.app = load_app(app_dir)
        self.config: dict[str, Any] = self.app["config"]
        self.inputs: dict[str, Any] = dict(self.app["inputs"])
        self.outputs: dict[str, Any] = dict(self.app["outputs"])
        self.values: dict[str, Any] = {}
        self.task_dir = Path()
        self.missing: list[str] = []  # required outputs the task did not write

    # -------------------------------------------------------------- inputs

    def check_job(self, job: Path) -> None:
        given = _read_inputs(job)
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            raise AppError(
                f"{job / 'inputs.json'}: {', '.join(unknown)} is not an input of the app; "
                f"its inputs: {', '.join(sorted(self.inputs))}"
            )
        values: dict[str, Any] = {}
        for name, declared in self.inputs.items():
            value = given.get(name)
            if value is None and _is_file(declared):
                found = [f for f in JOB_FILES.get(name, ()) if (job / f).is_file()]
                value = found[0] if found else None
            if value is None:
                value = DEFAULT_VALUES.get(name)
            if value is None:
                if not declared.get("required"):
                    continue  # an optional input left out: no file for it
                raise AppError(
                    f"--job {job}: no value for the app's required input '{name}'; "
                    "add it to inputs.json"
                )
            if _is_file(declared) and not (job / str(value)).is_file():
                raise AppError(f"--job {job}: input '{name}' names {value}, which is not a file")
            values[name] = value
        self.values = values

    def stage(self, job: Path, task_dir: Path, root: Path) -> list[str]:
        self.task_dir = task_dir
        staged = []
        for mapping in self.config["inputMappings"]:
            name, target = mapping["param"], mapping["file"]
            if name not in self.values or not target:
                continue
            dest = _inside(task_dir, target)
            if _is_file(self.inputs.get(name, {})):
                shutil.copyfile(job / str(self.values[name]), dest)
            else:
                dest.write_text(_as_text(self.values[name]), encoding="utf-8")
            staged.append(target)
        # guess: Everest puts an application's files into each task's directory (the
        # seed's design: bootstrap.sh "stored in Everest application files"); the
        # public exports hold none, so nothing public shows it.
        files = application_files(self.app_dir)
        if not files:
            raise AppError(
                f"--app {self.app_dir}: no application files (ApplicationFiles/); export it again"
            )
        for source in files:
            shutil.copy2(source, _inside(task_dir, source.name))
            staged.append(source.name)
        return staged

    # ------------------------------------------------------------- command

    def command(self, root: Path, model_in_image: str) -> tuple[list[str], dict[str, str]]:
        line = self.config["command"]
        config, how = image_agent_config(root, self.settings)
        say(f"agent config: {how}")
        agentconf.check([line], config, "the image spec's [agent] config_template")
        say(f"command (allowed by the image's agent config): {line}")
        argv = ["/usr/bin/env", "-C", TASK_DIR_IN_IMAGE, *shlex.split(line)]
        extra = {
            "EVEREST_MODEL_LOCAL": model_in_image,
            "EVEREST_CACHE_DIR": f"{RUN_DIR_IN_IMAGE}/cache",
        }
        return argv, extra

    def run(self, argv: list[str], env: dict[str, str], log: Path) -> Finished:
        """Like run-local's, with stdout and stderr kept apart in the task directory."""
        return run_in_group(
            argv,
            env,
            log,
            stdout_file=self.task_dir / "stdout",
            stderr_file=self.task_dir / "stderr",
        )

    # ------------------------------------------------------------- outputs

    def collect(self, task_dir: Path, run_dir: Path) -> list[str]:
        collected: dict[str, list[str]] = {}
        for mapping in self.config["outputMappings"]:
            pattern = mapping["file"] or mapping["pattern"]
            found = sorted(p for p in task_dir.glob(pattern) if p.is_file()) if pattern else []
            for path in found:
                shutil.copy2(path, run_dir / path.name)
            if found:
                collected[mapping["param"]] = [p.name for p in found]
        self.missing = sorted(
            name
            for name, declared in self.outputs.items()
            if declared.get("required") and name not in collected
        )
        (run_dir / OUTPUTS_FILE).write_text(json.dumps(collected, indent=2) + "\n")
        return sorted({name for names in collected.values() for name in names})


def image_agent_config(root: Path, settings: Settings | None = None) -> tuple[AgentConfig, str]:
    """The agent config inside a mounted image; for an image built without the agent,
    its spec's template (from the settings' images dir), when the image's fingerprint
    says it is the same spec."""
    info = read_json_object(root / "etc/everest/image.json")
    spec = None
    load = settings.load_spec if settings is not None else load_spec
    try:
        spec = load(str(info.get("spec", ""))) if info.get("spec") else None
    except EverbakeError:
        spec = None
    canonical = spec.to_canonical() if spec else {}
    found = agentconf.from_root(root, canonical)
    if found is not None:
        return found, f"read from the image ({found.where})"
    image_fp = (info.get("fingerprints") or {}).get("image")
    if spec is None or not built_from(spec, str(image_fp), info.get("agent_content")):
        raise AppError(
            "the image holds no agent config and its spec is not the current one; build it "
            "with the agent ([agent] required = true) or rebuild it from the current spec"
        )
    where = spec.agent.config_template
    how = f"the spec's {where} (the image has no agent; same fingerprint)"
    return agentconf.parse(render_agent_conf(spec), where), how


def run_app(
    app_dir: Path,
    job_dir: Path,
    *,
    image: str | Path | None = None,
    model: Path | None = None,
    runs_dir: Path | None = None,
    on_status: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> RunOutcome:
    """One task of ``job_dir`` through the exported app in ``app_dir``, in ``image``
    (default: the settings' image)."""
    steps = AppSteps(app_dir, settings)
    outcome = run_local(
        image,
        job_dir,
        model=model,
        runs_dir=runs_dir,
        on_status=on_status,
        settings=settings,
        steps=steps,
    )
    if steps.missing and not outcome.cancelled:
        say(
            f"required output(s) not written: {', '.join(steps.missing)}; Everest would "
            "fail this job (the app marks them required)"
        )
        if outcome.exit_code == 0:
            return dataclasses.replace(outcome, exit_code=1)
    return outcome


def _is_file(declared: Mapping[str, Any]) -> bool:
    return declared.get("format") == "uri"


def _as_text(value: Any) -> str:
    """A value input as its file holds it: a string as it is, anything else as JSON
    (a number as its digits, as templet's model reads rho.txt with fscanf)."""
    return value if isinstance(value, str) else json.dumps(value)


def _inside(task_dir: Path, name: str) -> Path:
    path = (task_dir / name).resolve()
    if not path.is_relative_to(task_dir.resolve()) or path == task_dir.resolve():
        raise AppError(f"mapping file {name!r} leaves the task directory; fix application.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _read_inputs(job: Path) -> dict[str, Any]:
    path = job / "inputs.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AppError(f"{path}: not JSON ({exc}); give an object of input values") from None
    if not isinstance(data, dict):
        raise AppError(f"{path}: not a JSON object of input values")
    return data
