"""The stand-in packer plays the build step against the fakes: the manifest it
writes is read by everbake.packer, the image it creates is confirmed through the
stores, and its failures drive the attempt plan the way a real build would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
from everbake.providers import get
from tests.cloud.conftest import FOLDER, PROJECT, ROOT

pytestmark = pytest.mark.timeout(60)

STANDIN = ROOT / "tests" / "fakes" / "packer_standin.py"
FP = "c0ffee" * 10 + "abcd"


def build_dir(tmp_path: Path, provider: str, zone: str, preemptible: bool) -> Path:
    directory = tmp_path / "build"
    directory.mkdir(exist_ok=True)
    values = {
        "image_name": "everbake-test-c0ffeec0ffee",
        "image_family": "everbake-test",
        "image_labels": {FINGERPRINT_LABEL: fingerprint_label_value(FP)},
        "image_description": "test",
        "zone": zone,
        "preemptible": preemptible,
        "fingerprint": FP,
        "layer": "image",
        "spec_name": "test",
        "manifest_path": str(tmp_path / "dist" / "test.manifest.json"),
        "scripts": ["provisioning/50-agent.sh"],
    }
    values["project_id" if provider == "gcp" else "folder_id"] = (
        PROJECT if provider == "gcp" else FOLDER
    )
    (directory / "inputs.auto.pkrvars.json").write_text(json.dumps(values))
    (tmp_path / "dist").mkdir(exist_ok=True)
    return directory


def packer_build(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, str(STANDIN), "build", "-on-error=cleanup", "-color=false", "."],
        cwd=directory,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_gcp_build_writes_manifest_and_creates_the_image(gce, gcp_store, tmp_path):
    from everbake.packer import read_manifest

    directory = build_dir(tmp_path, "gcp", "europe-west1-b", True)
    for _ in range(2):  # the manifest appends across runs; the last run is the one read
        result = packer_build(directory, {"EVERBAKE_GCE_ENDPOINT": gce.endpoint})
        gce.state.images[PROJECT].clear()
        assert result.returncode == 0, result.stdout + result.stderr
    result = packer_build(directory, {"EVERBAKE_GCE_ENDPOINT": gce.endpoint})
    entry = read_manifest(tmp_path / "dist" / "test.manifest.json")
    manifest = json.loads((tmp_path / "dist" / "test.manifest.json").read_text())
    assert len(manifest["builds"]) == 3 and entry["packer_run_uuid"] == manifest["last_run_uuid"]
    assert entry["artifact_id"] == "everbake-test-c0ffeec0ffee"  # GCE: the image name
    found = gcp_store.find_by_fingerprint(FP, family="everbake-test")
    assert found is not None and found.name == entry["artifact_id"]


def test_yandex_build_creates_the_image(yc, yandex_store, tmp_path):
    from everbake.packer import read_manifest

    directory = build_dir(tmp_path, "yandex", "ru-central1-a", True)
    env = yc.client_env(tmp_path)
    result = packer_build(directory, env)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = read_manifest(tmp_path / "dist" / "test.manifest.json")
    found = yandex_store.find_by_fingerprint(FP)
    assert found is not None and found.id == entry["artifact_id"]  # Yandex: the image id


@pytest.mark.parametrize(
    "provider, lose, kind",
    [
        ("gcp", "*=preempt", "suspect"),
        ("gcp", "*=ssh-timeout", "suspect"),
        ("gcp", "*=stockout", "stockout"),
        ("gcp", "*=failed-start", "preempted"),
        ("yandex", "*=preempt", "suspect"),
    ],
)
def test_each_lost_vm_prints_what_packer_prints(tmp_path, provider, lose, kind):
    log = tmp_path / "standin.log"
    directory = build_dir(tmp_path, provider, "z-a", True)
    result = packer_build(
        directory, {"EVERBAKE_STANDIN_LOSE": lose, "EVERBAKE_STANDIN_LOG": str(log)}
    )
    assert result.returncode == 1
    loss = get(provider).lost_vm(result.stdout.splitlines())
    assert loss is not None and loss.kind == kind
    assert not (tmp_path / "dist" / "test.manifest.json").exists()


def test_gce_fake_decides_the_vms_fate(gce, tmp_path):
    """With the GCE fake, the stand-in creates and deletes the VM through its API:
    a preempted VM leaves the zone operation a build confirms with."""
    from google.auth.credentials import AnonymousCredentials

    from everbake.stores.gcp import GcpImageStore

    gce.state.zone_trouble.update({"z-a": "preempt", "z-b": "stockout"})
    env = {"EVERBAKE_GCE_ENDPOINT": gce.endpoint}
    store = GcpImageStore(PROJECT, AnonymousCredentials(), gce.endpoint, timeout=10)
    for zone, preemptible, kind, lost in [
        ("z-a", True, "suspect", True),
        ("z-a", False, None, False),  # GCE preempts only preemptible VMs
        ("z-b", True, "stockout", False),
    ]:
        where = tmp_path / f"{zone}-{preemptible}"
        where.mkdir()
        directory = build_dir(where, "gcp", zone, preemptible)
        values = json.loads((directory / "inputs.auto.pkrvars.json").read_text())
        values["instance_name"] = f"everbake-image-{zone}-{preemptible}".lower()
        (directory / "inputs.auto.pkrvars.json").write_text(json.dumps(values))
        result = packer_build(directory, env)
        loss = get("gcp").lost_vm(result.stdout.splitlines())
        assert (loss.kind if loss else None) == kind, result.stdout
        assert store.build_vm_lost(zone, values["instance_name"]) is lost
        assert gce.state.instances.get((PROJECT, zone), {}) == {}  # deleted, as Packer does


def test_real_failure_is_not_a_preemption(tmp_path):
    directory = build_dir(tmp_path, "gcp", "z-a", True)
    result = packer_build(directory, {"EVERBAKE_STANDIN_FAIL": "pip install highspy==9.9"})
    assert result.returncode == 1
    assert get("gcp").lost_vm(result.stdout.splitlines()) is None
