"""End to end, for real: a job run through the Everest stand-in (its task runs in the
local image through run-local --app) is fetched and replayed with `invoke replay`;
the report says "same". After a solver bump and a runtime change in the spec, replay
refuses naming the differences, and --any-image bakes the new image, runs the job in
it and says what changed. diff-images compares the two builds, with stable JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from everbake.bake import build_image
from everbake.everest.app import export_app, load_app
from everbake.spec import REPO_ROOT
from tests.e2e.test_jobs_e2e import CLI, JOB, run_for_real
from tests.fakes.everest import EverestFake
from tests.fakes.everest_jobs import EverestJobs

pytestmark = pytest.mark.slow

MODEL = REPO_ROOT / "examples/transport"
# The changed runtime must sit inside the repository (fingerprints hash paths in it).
RUNTIME_COPY = REPO_ROOT / "build" / "e2e-replay-runtime"


@pytest.fixture(scope="module")
def job(base_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A DONE job of the fake Everest, run in the local image and fetched into runs/."""
    record = build_image("optimization").record
    work = tmp_path_factory.mktemp("replay")
    exported = export_app("optimization", output=work / "app")
    runner = run_for_real(record["image"], exported.directory, work / "fake-agent")
    with EverestFake() as fake:
        jobs = EverestJobs(fake, runner=runner)
        fake.add_app(load_app(exported.directory), alias="transport")
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "HOME": str(work),
            "EVEREST_URL": fake.url,
            "EVEREST_TOKEN": fake.issue_token(),
            "EVERBAKE_POLL_SECONDS": "0.5",
            "EVERBAKE_LOCAL_CACHE": os.environ["EVERBAKE_LOCAL_CACHE"],
            "INVOKE_EVERBAKE_DIST_DIR": str(REPO_ROOT / "dist"),
            "INVOKE_EVERBAKE_BUILD_DIR": str(REPO_ROOT / "build"),
        }
        shutil.copy(JOB / "params.json", work / "params.json")
        done = cli(work, env, "run-job", "--app", "alice/transport", "--version", "main",
                   "--params", "params.json", "--data", str(JOB / "data.tar.gz"))  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        job_id = done.stdout.split()[0]
        yield {"id": job_id, "dir": work / "runs" / job_id, "work": work, "env": env,
               "record": record, "jobs": jobs}  # fmt: skip
    shutil.rmtree(RUNTIME_COPY, ignore_errors=True)


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip


def bumped_images(top: Path) -> Path:
    """images/ with highspy 1.8.1 -> 1.9.0 and a runtime 0.1.0 -> 0.1.1 (a copy)."""
    shutil.rmtree(RUNTIME_COPY, ignore_errors=True)
    shutil.copytree(
        REPO_ROOT / "runtime",
        RUNTIME_COPY,
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    pyproject = RUNTIME_COPY / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    init = RUNTIME_COPY / "everest_runtime" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.1.1"'))
    images = top / "images"
    images.mkdir()
    shutil.copy(REPO_ROOT / "images" / "defaults.toml", images / "defaults.toml")
    text = (REPO_ROOT / "images" / "optimization.toml").read_text()
    assert 'version = "1.8.1"' in text
    text = text.replace('version = "1.8.1"', 'version = "1.9.0"', 1)
    text += f'\n[runtime]\nsource = "{RUNTIME_COPY.relative_to(REPO_ROOT)}"\n'
    (images / "optimization.toml").write_text(text)
    return images


def test_a_fetched_job_replays_the_same(job: dict[str, Any]) -> None:
    provenance = json.loads((job["dir"] / "provenance.json").read_text())
    assert provenance["image"]["name"] == job["record"]["image"]
    assert provenance["solvers"]["highs"]["version"] == "1.8.1"  # read from the image
    assert "image: " + job["record"]["image"] in (job["dir"] / "version.txt").read_text()
    assert job["record"]["packages"]["python"]["highspy"] == "1.8.1"
    done = cli(job["work"], job["env"], "replay", str(job["dir"]), "--model", str(MODEL))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "same", done.stdout
    assert f"replay of job {job['id']} in {job['record']['image']}" in lines[0]
    assert len(job["jobs"].submissions) == 1  # replay submits nothing
    token = job["env"]["EVEREST_TOKEN"].encode()
    assert token.decode() not in done.stdout + done.stderr
    written = [p for p in job["dir"].rglob("*") if p.is_file() and not p.is_symlink()]
    assert written and not [p for p in written if token in p.read_bytes()]


def test_a_bumped_spec_refuses_then_any_image_says_what_changed(
    job: dict[str, Any], tmp_path: Path
) -> None:
    images = bumped_images(tmp_path)
    env = {**job["env"], "INVOKE_EVERBAKE_IMAGES_DIR": str(images),
           "INVOKE_EVERBAKE_DIST_DIR": str(tmp_path / "dist")}  # fmt: skip
    args = ("replay", str(job["dir"]), "--model", str(MODEL))
    refused = cli(job["work"], env, *args)
    assert refused.returncode == 1
    message = refused.stderr.strip().splitlines()[-1]
    assert f"the job ran in image {job['record']['image']}" in message, refused.stderr
    assert "highs" in message and "1.8.1 → 1.9.0" in message
    assert "0.1.0 → 0.1.1" in message and "--any-image" in message
    assert not (tmp_path / "dist" / "local").exists()  # nothing baked

    ran = cli(job["work"], env, *args, "--any-image")
    out = ran.stdout
    assert ran.returncode == 1, out + ran.stderr[-3000:]  # the results differ: exit 1
    assert "image: not the job's; what changed:" in out, ran.stderr[-3000:]
    assert any("highspy" in line and "1.8.1 → 1.9.0" in line for line in out.splitlines()), out
    assert any("everest-runtime" in line and "0.1.0 → 0.1.1" in line for line in out.splitlines())
    assert "result out/summary.json: differs" in out  # it names the solver's version
    assert out.strip().splitlines()[-1] != "same"

    # diff-images on the two local builds: one solver version and the runtime differ.
    built = (tmp_path / "dist" / "builds" / "local").glob("everbake-optimization-*.json")
    new_record = next(p for p in built if not p.name.endswith(".manifest.json"))
    old_record = REPO_ROOT / "dist" / "builds" / "local" / f"{job['record']['image']}.json"
    table = cli(job["work"], env, "diff-images", str(old_record), str(new_record))
    assert table.returncode == 0, table.stderr
    assert "highs" in table.stdout and "1.8.1 → 1.9.0" in table.stdout
    assert "runtime version" in table.stdout and "0.1.0 → 0.1.1" in table.stdout
    first = cli(
        job["work"], env, "diff-images", str(old_record), str(new_record), "--format", "json"
    )
    again = cli(
        job["work"], env, "diff-images", str(old_record), str(new_record), "--format", "json"
    )
    assert first.returncode == 0 and first.stdout == again.stdout
    found = json.loads(first.stdout)
    assert found["solvers"]["changed"] == {"highs": ["1.8.1", "1.9.0"]}
    assert found["packages"]["python"]["changed"]["highspy"] == ["1.8.1", "1.9.0"]
    assert found["packages"]["python"]["changed"]["everest-runtime"] == ["0.1.0", "0.1.1"]
    assert found["runtime"] is not None and found["runtime_version"] == ["0.1.0", "0.1.1"]
    assert found["agent"] is None and found["base_os"] is None
    assert found["packages"]["debian"] == {"added": {}, "removed": {}, "changed": {}}


def test_a_failed_job_replays_with_debug(job: dict[str, Any]) -> None:
    (job["work"] / "bad.json").write_text('{"freight": "not a number"}')
    done = cli(job["work"], job["env"], "run-job", "--app", "alice/transport", "--version",
               "main", "--params", "bad.json", "--data", str(JOB / "data.tar.gz"))  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]  # FAILED
    failed = job["work"] / "runs" / done.stdout.split()[0]
    assert json.loads((failed / "provenance.json").read_text())["task"]["exit_code"] == 2
    again = cli(job["work"], job["env"], "replay", str(failed), "--model", str(MODEL), "--debug")
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1] == "same"  # the same failure
    assert "debug archive: " in again.stdout
    report = next((failed / "replay" / "runs").glob("*/replay.json"))
    assert json.loads(report.read_text())["same"] is True


def test_a_job_whose_image_is_gone_is_rebaked_from_the_same_spec(job: dict[str, Any]) -> None:
    record = REPO_ROOT / "dist" / "builds" / "local" / f"{job['record']['image']}.json"
    aside = record.with_name(record.name + ".aside")
    record.rename(aside)  # the image is no longer known here
    try:
        done = cli(job["work"], job["env"], "replay", str(job["dir"]), "--model", str(MODEL))
    finally:
        if not record.exists():
            aside.rename(record)
        else:
            aside.unlink()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "from spec optimization (same fingerprint)" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "same"
