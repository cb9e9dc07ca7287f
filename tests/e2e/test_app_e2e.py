"""End to end, for real: export the Everest app for the default local image and run
the example job through `run-local --app`, its fixed command reading the version
and debug flag from the value files the app's inputMappings name: the same
outputs as plain run-local, plus stdout/stderr captured as the agent does; a
command the image's agent config does not allow is refused before anything runs."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from everbake.bake import build_image
from everbake.everest.agentconf import AppError
from everbake.everest.app import export_app
from everbake.everest.runapp import run_app
from everbake.localbuild.chroot import mounts_under
from everbake.runlocal import run_local
from everbake.spec import REPO_ROOT

pytestmark = pytest.mark.slow

JOB = REPO_ROOT / "examples/transport/job"
SAME = ("results.zip", "status.txt", "version.txt", "stats.json", "stats.csv", "stats.svg")


@pytest.fixture(scope="module")
def image(base_cache: Path) -> str:
    return str(build_image("optimization").record["image"])


def _objective(run: Path) -> float:
    with zipfile.ZipFile(run / "results.zip") as results:
        name = next(n for n in results.namelist() if n.endswith("summary.json"))
        return float(json.loads(results.read(name))["objective"])


def test_the_exported_app_runs_the_example_job_like_run_local(image: str, tmp_path: Path) -> None:
    plain = run_local(image, JOB, runs_dir=tmp_path / "plain")
    app_dir = export_app("optimization", output=tmp_path / "app").directory
    statuses: list[str] = []
    via_app = run_app(
        app_dir, JOB, image=image, runs_dir=tmp_path / "app-runs", on_status=statuses.append
    )
    assert plain.exit_code == via_app.exit_code == 0
    a, b = plain.run_dir, via_app.run_dir
    for name in SAME:
        assert (a / name).is_file() and (b / name).is_file(), name
    assert _objective(a) == _objective(b)
    assert (a / "status.txt").read_text() == (b / "status.txt").read_text()
    assert statuses and "153.675" in (b / "status.txt").read_text()
    # What Everest would hand back: the mapped outputs, stdout/stderr as the agent keeps them.
    outputs = json.loads((b / "outputs.json").read_text())
    mapped = {"results", "status", "model_version", "stats", "stats_csv", "stats_chart", "stdout"}
    assert mapped <= set(outputs)
    assert "debug_archive" not in outputs  # debug=false by default
    # Every output the app marks required was written (else the job would fail).
    descriptor = json.loads((app_dir / "application.json").read_text())
    required = {name for name, d in descriptor["outputs"].items() if d["required"]}
    assert required <= set(outputs)
    assert descriptor["config"]["command"] == "bash bootstrap.sh"
    assert (b / "stdout").stat().st_size + (b / "stderr").stat().st_size > 0
    assert mounts_under(tmp_path) == []


def test_the_debug_input_returns_the_debug_archive(image: str, tmp_path: Path) -> None:
    app_dir = export_app("optimization", output=tmp_path / "app").directory
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    (job / "inputs.json").write_text(json.dumps({"version": "local", "debug": "true"}))
    done = run_app(app_dir, job, image=image, runs_dir=tmp_path / "runs")
    assert done.exit_code == 0
    outputs = json.loads((done.run_dir / "outputs.json").read_text())
    assert outputs["debug_archive"] == ["debug.zip"]
    with zipfile.ZipFile(done.run_dir / "debug.zip") as debug:
        assert any(name.endswith("stdout.log") for name in debug.namelist())


def test_a_command_the_image_does_not_allow_is_refused(image: str, tmp_path: Path) -> None:
    app_dir = export_app("optimization", output=tmp_path / "app").directory
    descriptor = json.loads((app_dir / "application.json").read_text())
    descriptor["config"]["command"] = "bash other.sh"
    (app_dir / "application.json").write_text(json.dumps(descriptor))
    with pytest.raises(AppError, match=r'add "bash other\\\\.sh" to allowedCommands'):
        run_app(app_dir, JOB, image=image, runs_dir=tmp_path / "runs")
    assert not any((tmp_path / "runs").rglob("stdout"))
    assert mounts_under(tmp_path) == []
