"""run-local --app's steps without an image: job inputs by the app's mappings, the
command checked against an image root's agent config, outputs by the mappings.
(The real run in a local image is the slow tier: tests/e2e/test_app_e2e.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from everbake.everest.agentconf import AppError
from everbake.everest.app import export_app
from everbake.everest.runapp import AppSteps
from everbake.spec import REPO_ROOT
from tests.everest.test_app_export import _local_record

JOB = REPO_ROOT / "examples/transport/job"


@pytest.fixture
def app_dir(repo_copy: Path, tmp_path: Path) -> Path:
    _local_record(repo_copy)
    return export_app(
        "optimization", output=tmp_path / "app", images_dir=repo_copy / "images"
    ).directory


def _root(tmp_path: Path, allowed: list[str]) -> Path:
    root = tmp_path / "root"
    conf = root / "opt/everest/agent/conf/agent.conf.template"
    conf.parent.mkdir(parents=True)
    conf.write_text(json.dumps({"security": {"allowedCommands": allowed}}))
    (root / "etc/everest").mkdir(parents=True)
    (root / "etc/everest/image.json").write_text(json.dumps({"spec": "optimization"}))
    return root


def test_run_local_s_job_layout_maps_onto_the_app(app_dir: Path, tmp_path: Path) -> None:
    steps = AppSteps(app_dir)
    steps.check_job(JOB)
    # debug is optional and not given: no value, hence no file for it.
    assert steps.values == {"version": "local", "parameters": "params.json", "data": "data.tar.gz"}
    task = tmp_path / "task"
    task.mkdir()
    staged = steps.stage(JOB, task, tmp_path)
    assert staged == ["input-version.txt", "params.json", "data.archive", "bootstrap.sh"]
    assert (task / "input-version.txt").read_text() == "local"
    assert not (task / "input-debug.txt").exists()
    assert (task / "data.archive").read_bytes() == (JOB / "data.tar.gz").read_bytes()
    argv, extra = steps.command(_root(tmp_path, ["bash bootstrap\\.sh"]), "/m")
    # The fixed command: nothing of the job's values in it.
    assert argv == ["/usr/bin/env", "-C", "/var/tmp/everbake-run/task", "bash", "bootstrap.sh"]
    assert extra["EVEREST_MODEL_LOCAL"] == "/m"


def test_inputs_json_overrides_and_is_checked(app_dir: Path, tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    (job / "inputs.json").write_text(json.dumps({"version": "v2.0", "debug": "true"}))
    steps = AppSteps(app_dir)
    steps.check_job(job)
    assert steps.values["version"] == "v2.0" and steps.values["debug"] == "true"
    (tmp_path / "task").mkdir()
    steps.stage(job, tmp_path / "task", tmp_path)
    assert (tmp_path / "task" / "input-debug.txt").read_text() == "true"
    (job / "inputs.json").write_text(json.dumps({"verison": "v2.0"}))
    with pytest.raises(AppError, match=r"verison is not an input of the app; its inputs: data"):
        steps.check_job(job)
    (job / "inputs.json").write_text("{}")
    (job / "params.json").unlink()
    with pytest.raises(AppError, match=r"no value for the app's required input 'parameters'"):
        steps.check_job(job)


def test_a_command_the_image_does_not_allow_is_refused(app_dir: Path, tmp_path: Path) -> None:
    steps = AppSteps(app_dir)
    steps.check_job(JOB)
    with pytest.raises(AppError) as refused:
        steps.command(_root(tmp_path, ["everest-bootstrap .*", "bash bootstrap\\.sh .*"]), "/m")
    assert "command 'bash bootstrap.sh' matches no security.allowedCommands" in str(refused.value)
    assert "(/opt/everest/agent/conf/agent.conf.template)" in str(refused.value)


def test_outputs_are_collected_by_the_mappings(app_dir: Path, tmp_path: Path) -> None:
    task, run = tmp_path / "task", tmp_path / "run"
    task.mkdir()
    run.mkdir()
    for name in ("results.zip", "status.txt", "stdout", "stderr", "work.tmp"):
        (task / name).write_text(name)
    steps = AppSteps(app_dir)
    collected = steps.collect(task, run)
    assert collected == ["results.zip", "status.txt", "stderr", "stdout"]
    # Required outputs the task did not write: Everest would fail the job.
    assert steps.missing == ["model_version", "stats", "stats_csv"]
    assert json.loads((run / "outputs.json").read_text()) == {
        "results": ["results.zip"],
        "stdout": ["stdout"],
        "stderr": ["stderr"],
        "status": ["status.txt"],
    }
    assert not (run / "work.tmp").exists()


def test_the_model_s_metrics_json_is_collected_when_present(app_dir: Path, tmp_path: Path) -> None:
    steps = AppSteps(app_dir)
    for wrote in (True, False):
        task, run = tmp_path / f"task-{wrote}", tmp_path / f"run-{wrote}"
        task.mkdir()
        run.mkdir()
        (task / "status.txt").write_text("optimal: objective 153.675")
        if wrote:
            (task / "metrics.json").write_text('{"objective": 153.675}')
        collected = steps.collect(task, run)
        outputs = json.loads((run / "outputs.json").read_text())
        if wrote:
            assert "metrics.json" in collected and outputs["metrics"] == ["metrics.json"]
            assert (run / "metrics.json").read_text() == '{"objective": 153.675}'
        else:
            assert "metrics" not in outputs and not (run / "metrics.json").exists()
        assert "metrics" not in steps.missing  # optional: a job without it does not fail


def test_a_mapping_that_leaves_the_task_dir_is_refused(app_dir: Path, tmp_path: Path) -> None:
    descriptor = json.loads((app_dir / "application.json").read_text())
    descriptor["config"]["inputMappings"][1]["file"] = "../escape.json"
    (app_dir / "application.json").write_text(json.dumps(descriptor))
    steps = AppSteps(app_dir)
    steps.check_job(JOB)
    (tmp_path / "task").mkdir()
    with pytest.raises(AppError, match="leaves the task directory"):
        steps.stage(JOB, tmp_path / "task", tmp_path)
    assert not (tmp_path / "escape.json").exists()


def test_a_value_that_is_not_text_is_written_as_json(app_dir: Path, tmp_path: Path) -> None:
    descriptor = json.loads((app_dir / "application.json").read_text())
    descriptor["inputs"]["rho"] = {
        "title": "rho", "description": "", "type": "number", "required": False
    }  # fmt: skip
    descriptor["config"]["inputMappings"].append({"param": "rho", "file": "rho.txt", "pattern": ""})
    (app_dir / "application.json").write_text(json.dumps(descriptor))
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    (job / "inputs.json").write_text(json.dumps({"rho": 28.5}))
    steps = AppSteps(app_dir)
    steps.check_job(job)
    (tmp_path / "task").mkdir()
    steps.stage(job, tmp_path / "task", tmp_path)
    assert (tmp_path / "task" / "rho.txt").read_text() == "28.5"


def test_an_app_directory_that_left_the_format_is_refused(app_dir: Path) -> None:
    descriptor = json.loads((app_dir / "application.json").read_text())
    descriptor["config"]["command"] = "bash bootstrap.sh ${version}"
    (app_dir / "application.json").write_text(json.dumps(descriptor))
    with pytest.raises(AppError, match=r"not Everest's application format: config\.command"):
        AppSteps(app_dir)


def test_the_zip_as_the_web_ui_imports_it_runs_as_exported(app_dir: Path, tmp_path: Path) -> None:
    """Unpacked, the zip alone (what an Everest server gets) is a complete app."""
    import zipfile

    imported = tmp_path / "imported"
    with zipfile.ZipFile(app_dir / "optimization-app.zip") as archive:
        archive.extractall(imported)
    steps = AppSteps(imported)
    assert steps.app == json.loads((app_dir / "application.json").read_text())
    steps.check_job(JOB)
    (tmp_path / "task").mkdir()
    staged = steps.stage(JOB, tmp_path / "task", tmp_path)
    assert "bootstrap.sh" in staged
    assert (tmp_path / "task" / "bootstrap.sh").read_bytes() == (
        app_dir / "ApplicationFiles" / "bootstrap.sh"
    ).read_bytes()
