"""`invoke check` per cloud provider, cheap to expensive, against the fakes: the last
step is a real API call through the SDK; a missing step names its fix and the
steps after it are not tried."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest

from everbake import check, packer
from everbake.providers import get
from everbake.settings import Settings
from tests.cloud.conftest import FOLDER, PROJECT, ROOT
from tests.cloud.test_build_flow_cloud import cloud, repo, spec_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(120)


def lines_of(provider, spec):
    return {line.what: line for line in get(provider).check([spec], os.environ)}


def test_everything_present_ends_with_a_real_listing(repo, cloud):  # noqa: F811
    spec = spec_in(repo)
    cloud["gce"].add_image(PROJECT, "everbake-cloudtest-1", "everbake-cloudtest")
    cloud["yc"].add_image(FOLDER, "everbake-cloudtest-1", "everbake-cloudtest")
    cloud["yc"].add_image(FOLDER, "everbake-cloudtest-2", "everbake-cloudtest")
    gcp = get("gcp").check([spec], os.environ)
    assert [line.what for line in gcp] == [
        "gcp: sdk",
        "gcp: credentials",
        "gcp: project",
        "gcp: api",
    ]
    assert all(line.ok for line in gcp), gcp
    assert gcp[-1].detail == f"{PROJECT}: images 1 in everbake-cloudtest"
    yc = lines_of("yandex", spec)
    assert yc["yandex: api"].ok and yc["yandex: api"].detail.endswith("2 in everbake-cloudtest")
    assert yc["yandex: folder"].detail == FOLDER
    builder = yc["yandex: packer builder"]
    assert builder.ok == packer.supports_plugins(packer.detect_version())
    if not builder.ok:
        assert "Packer >= 1.7" in builder.fix


def test_missing_credentials_stop_before_the_api(repo, cloud, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.delenv("YC_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    spec = spec_in(repo)
    gcp, yc = lines_of("gcp", spec), lines_of("yandex", spec)
    assert not gcp["gcp: credentials"].ok
    assert gcp["gcp: credentials"].fix == "gcloud auth application-default login"
    assert yc["yandex: credentials"].fix == "export YC_TOKEN=$(yc iam create-token)"
    assert "gcp: api" not in gcp and "yandex: api" not in yc
    assert cloud["gce"].state.requests == [] and cloud["yc"].calls == []


def test_missing_project_names_the_variable(repo, cloud, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    monkeypatch.delenv("YC_FOLDER_ID")
    spec = spec_in(repo)
    gcp, yc = lines_of("gcp", spec), lines_of("yandex", spec)
    assert gcp["gcp: project"].fix.startswith("export GOOGLE_CLOUD_PROJECT=<project>")
    assert yc["yandex: folder"].fix.startswith("export YC_FOLDER_ID=$(yc config get folder-id)")
    assert "gcp: api" not in gcp and "yandex: api" not in yc


def test_refused_credentials_fail_the_api_step_with_the_fix(repo, cloud):  # noqa: F811
    cloud["gce"].fail(401, "/global/images")
    cloud["yc"].fail(grpc.StatusCode.UNAUTHENTICATED, "ImageService/List")
    spec = spec_in(repo)
    gcp, yc = lines_of("gcp", spec), lines_of("yandex", spec)
    assert not gcp["gcp: api"].ok and "gcloud auth application-default login" in (
        gcp["gcp: api"].detail
    )
    assert not yc["yandex: api"].ok and "YC_TOKEN" in yc["yandex: api"].detail


def test_format_shows_the_fix_under_each_missing_line(repo, cloud, monkeypatch):  # noqa: F811
    monkeypatch.delenv("YC_FOLDER_ID")
    text = check.format_lines(check.run_checks([get("yandex")], [spec_in(repo)]))
    assert "MISSING yandex: folder" in text
    assert "fix: export YC_FOLDER_ID=$(yc config get folder-id)" in text


def test_check_task_with_an_unknown_project_fails_naming_it_and_the_causes(cloud):  # noqa: F811
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": "no-such-project", "PYTHONPATH": str(ROOT)}
    env.pop("EVERBAKE_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "check", "--provider", "gcp"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    api = [line for line in done.stdout.splitlines() if "gcp: api" in line]
    assert len(api) == 1, done.stdout
    assert "MISSING" in api[0] and "project no-such-project was not found" in api[0]
    assert "compute.googleapis.com" in api[0] and "role on the project" in api[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_broken_spec_fails_its_line_and_is_not_skipped(tmp_path, monkeypatch):
    # The spec loader of build-image reports a broken spec; check does too, then
    # checks the cloud with what the environment names.
    images = tmp_path / "images"
    images.mkdir()
    (images / "defaults.toml").write_text((ROOT / "images" / "defaults.toml").read_text())
    (images / "broken.toml").write_text('name = "broken"\nfamly = "everbake-broken"\n')
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    lines = check.run_checks([get("gcp")], env=os.environ, settings=Settings(images_dir=images))
    specs = next(line for line in lines if line.what == "image specs")
    assert not specs.ok
    assert "broken.toml" in specs.detail and "famly" in specs.detail
    assert specs.fix == "invoke validate lists every problem"
    project = next(line for line in lines if line.what == "gcp: project")
    assert project.ok and PROJECT in project.detail
