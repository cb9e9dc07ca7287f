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
    assert [line.what for line in gcp][:6] == [
        "gcp: sdk",
        "gcp: credentials",
        "gcp: project",
        "gcp: api",
        "gcp: permissions",
        "gcp: quota zone",  # the test zones zone-a.. are in region "zone"
    ]
    assert all(line.ok for line in gcp), gcp
    assert gcp[3].detail == f"{PROJECT}: images 1 in everbake-cloudtest"
    assert gcp[4].detail == f"{PROJECT}: all 12 a build needs"
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


# ------------------------------------------------- what a build needs (issue 20)


def test_missing_permissions_are_named_with_the_roles(repo, cloud):  # noqa: F811
    gce = cloud["gce"]
    gce.state.granted = {"compute.images.get", "compute.images.create"}
    line = lines_of("gcp", spec_in(repo))["gcp: permissions"]
    assert not line.ok and "compute.instances.create" in line.detail
    assert "compute.zoneOperations.list" in line.detail
    assert "roles/compute.instanceAdmin.v1" in line.fix and PROJECT in line.fix
    asked = [r for r in gce.state.requests if r.path.endswith(":testIamPermissions")]
    assert asked and asked[0].method == "POST"


def test_a_disabled_compute_api_says_enable_it_not_grant_a_role(repo, cloud):  # noqa: F811
    cloud["gce"].state.api_disabled = True
    api = lines_of("gcp", spec_in(repo))["gcp: api"]
    assert not api.ok
    assert f"gcloud services enable compute.googleapis.com --project {PROJECT}" in api.detail
    assert "roles/" not in api.detail


def test_regional_quotas_are_checked_for_the_build_vm(repo, cloud):  # noqa: F811
    gce = cloud["gce"]
    gce.state.quotas["zone"] = {
        "CPUS": (24.0, 23.0),
        "IN_USE_ADDRESSES": (8.0, 0.0),
        "PREEMPTIBLE_CPUS": (0.0, 0.0),
    }
    line = lines_of("gcp", spec_in(repo))["gcp: quota zone"]
    assert not line.ok and "CPUS 1 free, a build needs 2" in line.detail  # e2-standard-2
    assert "console.cloud.google.com/iam-admin/quotas" in line.fix
    gce.state.quotas["zone"]["CPUS"] = (24.0, 0.0)
    line = lines_of("gcp", spec_in(repo))["gcp: quota zone"]
    assert line.ok and "PREEMPTIBLE_CPUS 0 free: builds here use a standard VM" in line.detail


def test_os_login_names_its_role_and_packer_1_6_is_said(repo, cloud):  # noqa: F811
    path = repo / "images" / "cloudtest.toml"
    path.write_text(path.read_text().replace("[build.gcp]\n", "[build.gcp]\nuse_os_login = true\n"))
    lines = [line for line in get("gcp").check([spec_in(repo)], os.environ)]
    os_login = [line.detail for line in lines if line.what == "gcp: os login"]
    assert any("roles/compute.osAdminLogin" in d for d in os_login)
    asked = [r for r in cloud["gce"].state.requests if r.path.endswith(":testIamPermissions")]
    assert "compute.instances.osAdminLogin" in asked[-1].body.decode()
    if packer.detect_version() < (1, 7, 0):
        assert any("use_os_login = false is not honoured" in d for d in os_login)


def test_yandex_check_finds_the_default_subnets_or_says_what_is_missing(repo, cloud):  # noqa: F811
    yc = cloud["yc"]
    line = lines_of("yandex", spec_in(repo))["yandex: subnets"]
    assert line.ok and "ru-central1-a e9bdefaulta" in line.detail
    yc.networks.clear()
    line = lines_of("yandex", spec_in(repo))["yandex: subnets"]
    assert not line.ok and "no subnet for zone ru-central1-a, ru-central1-b" in line.detail
    assert "build.yandex.subnets" in line.fix
    permissions = lines_of("yandex", spec_in(repo))["yandex: permissions"]
    assert permissions.detail.startswith("not checked") and "compute.editor" in permissions.detail
