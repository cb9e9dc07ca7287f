"""End to end, for real: `invoke run-job` against the Everest stand-in, whose jobs run
through run-local's machinery with the exported app in the local image, so the
example transport job comes back with the real objective."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from everbake.bake import build_image
from everbake.everest.app import export_app, load_app
from everbake.everest.runapp import OUTPUTS_FILE, run_app
from everbake.spec import REPO_ROOT
from tests.fakes.everest import EverestFake
from tests.fakes.everest_jobs import EverestJobs, FakeJob

pytestmark = pytest.mark.slow

JOB = REPO_ROOT / "examples/transport/job"
CLI = "import sys; from everbake.cli import main; sys.argv[0] = 'everbake'; main()"


def run_for_real(image: str, app_dir: Path, work: Path):  # type: ignore[no-untyped-def]
    """An EverestJobs runner: each job's inputs become a job directory for run-local
    --app; its live statuses and outputs go back to the fake."""

    def runner(jobs: EverestJobs, job: FakeJob) -> None:
        job_dir = work / job.id
        job_dir.mkdir(parents=True)
        for name, target in (("parameters", "params.json"), ("data", "data.tar.gz")):
            content = jobs.fake.file_at(job.inputs[name])
            assert content is not None, f"input {name} was not uploaded"
            (job_dir / target).write_bytes(content)
        # Value inputs as they are; run-local --app writes them into the mapped files.
        values = {k: job.inputs[k] for k in ("version", "debug") if k in job.inputs}
        (job_dir / "inputs.json").write_text(json.dumps(values))
        jobs.drive(job.id, "RUNNING")
        try:
            outcome = run_app(
                app_dir,
                job_dir,
                image=image,
                runs_dir=work / "runs",
                on_status=lambda text: jobs.drive(job.id, "RUNNING", text),
            )
        except Exception as exc:
            jobs.drive(job.id, "FAILED", f"run-local failed: {exc}")
            raise
        run = outcome.run_dir
        mapped = json.loads((run / OUTPUTS_FILE).read_text())
        outputs = {
            param: (names[0], (run / names[0]).read_bytes()) for param, names in mapped.items()
        }
        state = "DONE" if outcome.exit_code == 0 else "FAILED"
        jobs.drive(job.id, state, outcome.last_status or "", outputs)

    return runner


@pytest.fixture(scope="module")
def local_image() -> dict:
    if os.geteuid() != 0:
        pytest.skip("local image builds need root (mmdebstrap, chroot, mounts)")
    return build_image("optimization").record  # "up to date" when already baked


def test_run_job_gets_the_real_objective_back(local_image: dict, tmp_path: Path) -> None:
    exported = export_app("optimization", output=tmp_path / "app")
    runner = run_for_real(local_image["image"], exported.directory, tmp_path / "fake-agent")
    with EverestFake() as fake:
        jobs = EverestJobs(fake, runner=runner)
        fake.add_app(load_app(exported.directory), alias="transport")
        token = fake.issue_token()
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "HOME": str(tmp_path),
            "EVEREST_URL": fake.url,
            "EVEREST_TOKEN": token,
            "EVERBAKE_POLL_SECONDS": "0.5",
        }
        shutil.copy(JOB / "params.json", tmp_path / "params.json")
        result = subprocess.run(
            [sys.executable, "-c", CLI, "run-job", "--app", "alice/transport",
             "--version", "main", "--params", "params.json", "--data", str(JOB / "data.tar.gz")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    job_id = result.stdout.split()[0]
    run = tmp_path / "runs" / job_id
    expected = json.loads((JOB / "expected.json").read_text())
    with zipfile.ZipFile(run / "results.zip") as results:
        name = next(n for n in results.namelist() if n.endswith("summary.json"))
        objective = json.loads(results.read(name))["objective"]
    assert abs(objective - expected["objective"]) <= expected["tolerance"] * max(1, abs(objective))
    assert "153.675" in (run / "status.txt").read_text()
    assert json.loads((run / "submission.json").read_text())["job"] == job_id
    assert "RUNNING" in result.stderr and f"job {job_id}: DONE" in result.stderr
    assert token not in result.stdout + result.stderr
    assert len(jobs.submissions) == 1
