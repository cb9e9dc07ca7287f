"""clean-builds end to end: the real CLI, the real SDKs, leftovers seeded in the fakes
as a failed build leaves them (a labelled VM, a disk named after its VM)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.cloud.conftest import FOLDER, PROJECT, ROOT, service_account_key
from tests.cloud.test_gc_task import run as run_task
from tests.fakes.gce import _rfc3339

pytestmark = pytest.mark.timeout(120)

OLD = datetime.now(timezone.utc) - timedelta(hours=3)
ZONE = "europe-west1-b"  # a zone of images/optimization.toml (images/defaults.toml)


def run(args, env, cwd):
    return run_task(args, env, cwd, task="clean-builds")


def test_a_leaked_gce_disk_is_found_and_removed(gce, tmp_path):
    key = service_account_key(tmp_path / "sa.json", f"{gce.endpoint}/token")
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "EVERBAKE_GCE_ENDPOINT": gce.endpoint,
    }
    old, new = "everbake-image-0123456789abcdef", "everbake-base-fedcba9876543210"
    disks = gce.state.disks.setdefault((PROJECT, ZONE), {})
    for name, when in ((old, OLD), (new, datetime.now(timezone.utc))):
        disks[name] = {"kind": "compute#disk", "name": name, "creationTimestamp": _rfc3339(when)}
    disks["someone-elses-disk"] = {"name": "someone-elses-disk", "creationTimestamp": _rfc3339(OLD)}
    gce.state.instances.setdefault((PROJECT, ZONE), {})["everbake-image-00000000000000aa"] = {
        "name": "everbake-image-00000000000000aa",
        "status": "TERMINATED",
        "labels": {"everbake-build": "00000000000000aa"},
        "creationTimestamp": _rfc3339(OLD),
    }

    dry = run(["--provider", "gcp", "--image", "optimization", "--dry-run"], env, ROOT)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete disk {old} in {ZONE}" in dry.stdout
    assert f"would delete instance everbake-image-00000000000000aa in {ZONE}" in dry.stdout
    assert new not in dry.stdout and "someone-elses-disk" not in dry.stdout
    assert "dry run: 2 leftover(s)" in dry.stderr and old in disks

    done = run(["--provider", "gcp", "--image", "optimization"], env, ROOT)
    assert done.returncode == 0, done.stderr
    assert set(disks) == {new, "someone-elses-disk"}  # the young one may be a running build
    assert gce.state.instances[(PROJECT, ZONE)] == {}
    again = run(["--provider", "gcp", "--image", "optimization"], env, ROOT)
    assert "no build leftovers older than an hour" in again.stderr


def test_yandex_leftovers_by_label(yc, tmp_path):
    env = yc.client_env(tmp_path, FOLDER)
    yc.add_disk(
        FOLDER,
        "everbake-image-0123456789abcdef-disk",
        "ru-central1-a",
        {"everbake-build": "0123456789abcdef"},
        OLD,
    )
    yc.add_disk(FOLDER, "data", "ru-central1-a", {}, OLD)
    done = run(["--provider", "yandex", "--image", "optimization"], env, ROOT)
    assert done.returncode == 0, done.stderr
    assert "delete disk everbake-image-0123456789abcdef-disk in ru-central1-a" in done.stdout
    assert [d.name for d in yc.disks.values()] == ["data"]


def test_local_is_refused_in_one_line(tmp_path):
    done = run(["--provider", "local"], {}, ROOT)
    assert done.returncode != 0
    assert "clean-builds cleans cloud build VMs; choose gcp or yandex" in done.stderr
    assert "Traceback" not in done.stderr
