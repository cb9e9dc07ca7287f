"""build-image on gcp and yandex against the loopback fakes, with the stand-in packer
first on PATH (it plays `packer build` only; render, fmt and validate are the real
packer). Each test works in its own copy of the repository, so build/ and dist/
are its own."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import grpc
import pytest

from everbake import naming
from everbake.agent_fetch import AgentSource, fetch_agent
from everbake.bake import build_image
from everbake.errors import BuildError, CloudError, CredentialsError, SpecError
from everbake.fingerprint import fingerprints
from everbake.pinagent import set_agent_keys
from everbake.providers import get
from everbake.spec import load_spec
from tests.cloud.conftest import FOLDER, PROJECT, ROOT, service_account_key
from tests.fakes import packer_standin

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("packer") is None, reason="packer is not installed"),
]

SECRET = "s3cr3t-licence-9d41c7e0b2"
DEFAULT_SUBNETS = {"ru-central1-a": "e9bdefaulta", "ru-central1-b": "e2ldefaultb"}
SPEC = """
name = "cloudtest"
family = "everbake-cloudtest"
description = "flow test image"

[[solvers]]
name = "highs"
install = "pip"
package = "highspy"
version = "1.8.1"

[agent]
source = "agent-src"
ref = "test"

[secrets.licence]
mode = "embed"
env = "EVERBAKE_TEST_LICENCE"
path = "/etc/everest/licence.lic"

[build.gcp]
zones = ["zone-a", "zone-b", "zone-c"]

[build.yandex]
zones = ["ru-central1-a", "ru-central1-b"]
"""


def make_repo(root: Path) -> Path:
    """A copy of what a build reads: templates, provisioning, images, the runtime, an agent."""
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".ruff_cache")
    for name in ("templates", "provisioning", "images", "runtime"):
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    shutil.copytree(ROOT / "tests" / "fixtures" / "agent-src", root / "agent-src", ignore=ignore)
    (root / "images" / "cloudtest.toml").write_text(SPEC)
    # Cloud builds bake only a pinned agent: pin the fixture as pin-agent would.
    archive = fetch_agent(AgentSource("agent-src", "test", None, True), root / "agent.tgz", root)
    assert archive is not None
    (root / "agent.tgz").unlink()
    (root / "images" / "cloudtest.toml").write_text(set_agent_keys(SPEC, {"sha256": archive[1]}))
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def cloud(gce, yc, tmp_path, monkeypatch):
    """Both fakes up, credentials and endpoints in the environment, stand-in packer first."""
    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "CLOUDSDK_", "YC_", "EVERBAKE_", "PKR_VAR_")):
            monkeypatch.delenv(name)
    ca = tmp_path / "yc-ca.pem"
    ca.write_bytes(yc.root_certificates)
    log = tmp_path / "standin.jsonl"
    bin_dir = packer_standin.install(tmp_path / "bin").parent
    path = os.pathsep.join([str(bin_dir), os.environ["PATH"]])
    env = {
        "PATH": path,
        "HOME": str(tmp_path / "home"),
        "GOOGLE_APPLICATION_CREDENTIALS": str(
            service_account_key(tmp_path / "sa.json", f"{gce.endpoint}/token")
        ),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "EVERBAKE_GCE_ENDPOINT": gce.endpoint,
        "YC_TOKEN": yc.iam_token,
        "YC_FOLDER_ID": FOLDER,
        "EVERBAKE_YANDEX_ENDPOINT": yc.endpoint,
        "EVERBAKE_YANDEX_CA_FILE": str(ca),
        "EVERBAKE_STANDIN_LOG": str(log),
        "EVERBAKE_TEST_LICENCE": SECRET,
        "EVERBAKE_WATCH_INTERVAL": "0.05",  # the watcher looks every 50 ms here
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A folder as Yandex makes it: a network "default" with a subnet per zone.
    yc.add_network(FOLDER, "default", DEFAULT_SUBNETS)
    return {"gce": gce, "yc": yc, "log": log}


def runs(cloud) -> list[dict]:
    log: Path = cloud["log"]
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def built_layers(cloud) -> list[tuple[str, str, str, bool]]:
    """(provider, image_name layer, zone, preemptible) of every stand-in build."""
    out = []
    for run in runs(cloud):
        out.append((run["provider"], run["outcome"], run["zone"], run["preemptible"]))
    return out


def images_in(cloud, provider: str) -> set[str]:
    if provider == "gcp":
        return cloud["gce"].image_names(PROJECT)
    return cloud["yc"].image_names(FOLDER)


def spec_in(repo: Path):
    return load_spec("cloudtest", repo / "images")


# ----------------------------------------------------------------- happy paths


@pytest.mark.parametrize("provider", ["gcp", "yandex"])
def test_build_then_record_then_up_to_date(provider, repo, cloud, capfd):
    spec = spec_in(repo)
    fps = fingerprints(spec)
    outcome = build_image("cloudtest", get(provider), images_dir=repo / "images")
    assert not outcome.up_to_date
    name, base = naming.image_name(spec, fps), naming.image_name(spec, fps, "base")
    assert images_in(cloud, provider) == {name, base}
    assert [(r["outcome"], r["zone"]) for r in runs(cloud)] == [
        ("built", spec.build.gcp.zones[0] if provider == "gcp" else "ru-central1-a")
    ] * 2

    record_file = repo / "dist" / "builds" / provider / f"{name}.json"
    assert outcome.record_path == record_file
    record = json.loads(record_file.read_text())
    assert record["image_name"] == name and record["provider"] == provider
    assert record["fingerprints"] == {"base": fps.base, "image": fps.image}
    assert record["base"]["image_name"] == base and record["base"]["built"] is True
    assert [{k: v for k, v in a.items() if k != "watch"} for a in record["attempts"]] == [
        {"number": 1, "zone": record["zone"], "preemptible": True, "outcome": "built"}
    ]
    assert record["attempts"][0]["watch"]["instance"].startswith("everbake-image-")
    assert record["manifest"]["custom_data"]["fingerprint"] == fps.image
    if provider == "gcp":
        assert record["image_id"] and record["manifest"]["artifact_id"] == name
        assert record["project"] == PROJECT
    else:
        assert record["image_id"] == record["manifest"]["artifact_id"].strip()
        assert record["image_id"].startswith("fd8") and record["folder_id"] == FOLDER
    assert record["spec_canonical"]["name"] == "cloudtest"

    # The same fingerprint again: a lookup, no packer run, nothing rewritten.
    stamp = record_file.stat().st_mtime_ns
    capfd.readouterr()
    again = build_image("cloudtest", get(provider), images_dir=repo / "images")
    assert again.up_to_date and again.image == name
    assert len(runs(cloud)) == 2
    assert record_file.stat().st_mtime_ns == stamp
    assert f"up to date: {name}" in capfd.readouterr().err


def test_a_runtime_only_change_reuses_the_base(repo, cloud):
    build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    before = fingerprints(spec_in(repo))
    init = repo / "runtime" / "everest_runtime" / "__init__.py"
    init.write_text(init.read_text() + "\n# a runtime-only change\n")
    after = fingerprints(spec_in(repo))
    assert after.base == before.base and after.image != before.image

    outcome = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert not outcome.up_to_date
    layers = [run["argv"] for run in runs(cloud)]
    assert len(layers) == 3  # base + image, then only the image layer
    assert outcome.record["base"]["built"] is False
    assert outcome.record["base"]["image_name"] == naming.image_name(spec_in(repo), before, "base")
    values = json.loads((repo / "build/gcp/cloudtest/image/inputs.auto.pkrvars.json").read_text())
    assert values["source_image"] == outcome.record["base"]["image_name"]


def test_no_secret_value_in_record_build_dir_or_output(repo, cloud, capfd):
    build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    for path in [*(repo / "build").rglob("*"), *(repo / "dist").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    for run in runs(cloud):
        assert SECRET not in json.dumps(run["argv"])


def test_the_agent_sha256_from_staging_reaches_the_scripts(repo, cloud):
    build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    values = json.loads((repo / "build/gcp/cloudtest/image/inputs.auto.pkrvars.json").read_text())
    env = dict(item.split("=", 1) for item in values["script_env"])
    staged = repo / "build/gcp/cloudtest/image/staging/agent.tar.gz"
    from everbake.files import sha256_file

    assert env["EB_AGENT_SHA256"] == sha256_file(staged)
    assert (repo / "build/gcp/cloudtest/image/staging/image.json").is_file()
    base_staging = repo / "build/gcp/cloudtest/base/staging"
    assert not (base_staging / "agent.tar.gz").exists()  # the base layer needs no agent


# ------------------------------------------------------------------ fallbacks


@pytest.mark.parametrize(
    ("when", "console", "outcome"),
    [
        ("boot", "Timeout waiting for SSH.", "lost at boot"),
        ("script", "Script exited with non-zero exit status: 143", "lost"),
    ],
)
def test_a_preempted_vm_is_decided_by_the_cloud(
    repo, cloud, monkeypatch, capfd, when, console, outcome
):
    # GCE preempts zone-a's preemptible VMs 0.2 s after they start: while they boot
    # (the console shows only the SSH wait running out) or mid-script (SIGTERM: 143).
    gce = cloud["gce"]
    gce.state.zone_trouble["zone-a"] = "preempt"
    gce.state.preempt_after = 0.2
    monkeypatch.setenv(f"EVERBAKE_STANDIN_{'BOOT' if when == 'boot' else 'SCRIPT'}", "1.0")
    built = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    tried = [(r["zone"], r["preemptible"], r["outcome"]) for r in runs(cloud)]
    assert tried[:2] == [("zone-a", True, outcome), ("zone-b", True, "built")]
    first = built.record["base"]["attempts"][0]
    assert first["outcome"] == "preempted"
    seen = [s["status"] for s in first["watch"]["seen"]]
    assert seen[0] == "RUNNING" and "PREEMPTED" in seen  # the cloud's account of it
    err = capfd.readouterr().err
    assert console in err
    assert "the cloud took the VM (everbake-base-" in err and "PREEMPTED at" in err
    assert "zone-a lost the VM: trying the next zone, zone-b, on a preemptible VM" in err
    assert gce.state.instances[(PROJECT, "zone-a")] == {}  # Packer's cleanup deleted it


def test_a_failing_watch_is_noted_not_fatal(repo, cloud, monkeypatch, capfd):
    # Every look at zone-a's operations fails: the watch says so once and goes on;
    # without the cloud's word, the lost session is not retried blindly.
    gce = cloud["gce"]
    gce.state.zone_trouble["zone-a"] = "preempt"
    gce.state.preempt_after = 0.1
    gce.fail(503, "/zones/zone-a/operations")
    monkeypatch.setenv("EVERBAKE_STANDIN_SCRIPT", "0.8")
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    err = capfd.readouterr().err
    assert "watch: could not ask about everbake-base-" in err and "the build goes on" in err
    assert "ended its script with SIGTERM (exit status 143)" in str(failure.value)
    assert "so not retried" in str(failure.value) and "failed looks" in str(failure.value)
    assert "Traceback" not in err


def test_yandex_reaches_its_next_zone_though_cleanup_would_delete_the_vm(repo, cloud, monkeypatch):
    # Yandex stops ru-central1-a's preemptible VMs mid-script. The builder's cleanup
    # would delete the VM at once, so packer runs with -on-error=abort: the VM stays
    # until the cloud has been asked, then everbake removes it and its disk.
    yc = cloud["yc"]
    yc.preempt_zones = {"ru-central1-a"}
    yc.preempt_after = 0.2
    monkeypatch.setenv("EVERBAKE_STANDIN_SCRIPT", "1.0")
    built = build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    tried = [(r["zone"], r["outcome"], r["subnet"]) for r in runs(cloud)]
    assert tried[:2] == [
        ("ru-central1-a", "lost", DEFAULT_SUBNETS["ru-central1-a"]),
        ("ru-central1-b", "built", DEFAULT_SUBNETS["ru-central1-b"]),  # that zone's subnet
    ]
    lost = built.record["base"]["attempts"][0]
    assert lost["outcome"] == "preempted"
    assert yc.statuses[lost["watch"]["instance"]][-1] == "DELETING"  # removed afterwards
    assert {"STOPPING", "STOPPED"} & {s["status"] for s in lost["watch"]["seen"]}
    assert not yc.instances and not yc.disks  # nothing left behind
    assert [n.name for n in yc.networks.values()] == ["default"]  # no builder-made network
    serial = repo / "build/yandex/cloudtest/base" / "serial-port.log"
    assert "login:" in serial.read_text()  # read from the API before the VM went
    assert all("-on-error=abort" in r["argv"] for r in runs(cloud))


def test_yandex_failure_shows_the_serial_console_tail(repo, cloud, monkeypatch):
    monkeypatch.setenv("EVERBAKE_STANDIN_FAIL", "apt-get install coinor-cbc: E: Unable to locate")
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    message = str(failure.value)
    assert "serial console of the build VM" in message and "login:" in message


def test_no_preemptible_cpu_quota_moves_to_a_standard_vm(repo, cloud, capfd):
    cloud["gce"].state.zone_trouble["zone-a"] = "quota-preemptible"
    built = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    tried = [(r["zone"], r["preemptible"], r["outcome"]) for r in runs(cloud)]
    assert tried[:2] == [("zone-a", True, "not created"), ("zone-a", False, "built")]
    assert [a["outcome"] for a in built.record["base"]["attempts"]] == [
        "quota-preemptible",
        "built",
    ]
    err = capfd.readouterr().err
    assert "Quota 'PREEMPTIBLE_CPUS' exceeded" in err
    assert "no preemptible CPU quota left in zone: building on a standard" in err


@pytest.mark.parametrize("trouble", ["stockout", "quota-cpus"])
def test_trouble_in_one_region_moves_to_the_next_with_its_subnetwork(repo, cloud, capfd, trouble):
    path = repo / "images" / "cloudtest.toml"
    path.write_text(
        path.read_text().replace(
            'zones = ["zone-a", "zone-b", "zone-c"]',
            'zones = ["europe-west1-b", "europe-west1-c", "europe-west4-a"]\n'
            'subnetworks = { "europe-west1" = "builds-w1", "europe-west4" = "builds-w4" }',
        )
    )
    gce = cloud["gce"]
    gce.state.zone_trouble["europe-west1-b"] = trouble
    if trouble == "quota-cpus":  # a regional quota closes europe-west1-c too
        gce.state.zone_trouble["europe-west1-c"] = trouble
    build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    tried = [(r["zone"], r["outcome"], r["subnet"]) for r in runs(cloud)]
    if trouble == "stockout":
        assert tried[:2] == [
            ("europe-west1-b", "not created", "builds-w1"),
            ("europe-west1-c", "built", "builds-w1"),
        ]
    else:
        assert tried[:2] == [
            ("europe-west1-b", "not created", "builds-w1"),
            ("europe-west4-a", "built", "builds-w4"),
        ]
        err = capfd.readouterr().err
        assert "hit the CPUS quota of its region: trying the next region's zone" in err


def test_zones_in_two_regions_with_one_subnetwork_are_refused_before_any_vm(repo, cloud):
    path = repo / "images" / "cloudtest.toml"
    path.write_text(
        path.read_text().replace(
            'zones = ["zone-a", "zone-b", "zone-c"]',
            'zones = ["europe-west1-b", "europe-west4-a"]\nsubnetwork = "builds"',
        )
    )
    with pytest.raises(SpecError) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert "build.gcp.subnetwork: one subnetwork for zones in 2 regions" in str(failure.value)
    assert runs(cloud) == [] and cloud["gce"].state.requests == []


def test_a_yandex_folder_without_subnets_stops_before_any_vm(repo, cloud):
    cloud["yc"].networks.clear()
    cloud["yc"].subnets.clear()
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    message = str(failure.value)
    assert "no subnet for zone ru-central1-a, ru-central1-b" in message
    assert "build.yandex.subnets" in message and "\n" not in message
    assert runs(cloud) == []


def test_a_leftover_disk_is_named_when_the_build_fails(repo, cloud, monkeypatch):
    monkeypatch.setenv("EVERBAKE_STANDIN_FAIL", "pip install highspy==9.9")
    monkeypatch.setenv("EVERBAKE_STANDIN_LEAK", "disk")
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    message = str(failure.value)
    assert "left behind: disk everbake-base-" in message
    assert "invoke clean-builds --provider gcp" in message


def test_stock_outs_and_failed_starts_walk_each_zone_once(repo, cloud, capfd):
    # zone-a has no capacity, zone-b's VM fails to start, zone-c preempts: the
    # standard VM then goes to zone-b, not back to zone-a, which had no room.
    cloud["gce"].state.zone_trouble.update(
        {"zone-a": "stockout", "zone-b": "failed-start", "zone-c": "preempt"}
    )
    outcome = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    tried = [(r["zone"], r["preemptible"], r["outcome"]) for r in runs(cloud)][:4]
    assert tried == [
        ("zone-a", True, "not created"),
        ("zone-b", True, "not created"),
        ("zone-c", True, "lost at boot"),
        ("zone-b", False, "built"),
    ]
    kinds = [a["outcome"] for a in outcome.record["base"]["attempts"]]
    assert kinds == ["stockout", "preempted", "preempted", "built"]
    err = capfd.readouterr().err
    assert "zone-a out of capacity: trying the next zone, zone-b" in err
    assert "standard (non-preemptible) VM in zone-b" in err


def test_an_unconfirmed_disconnect_stops_with_the_log_tail(repo, cloud, monkeypatch):
    # The session drops but GCE shows no preemption: a real failure, not retried.
    monkeypatch.setenv("EVERBAKE_STANDIN_LOSE", "zone-a=disconnect")
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    message = str(failure.value)
    assert "lost its SSH session in the middle of a script" in message
    assert "does not show everbake-base-" in message and "so not retried" in message
    assert "Script disconnected unexpectedly" in message  # the log tail
    assert len(runs(cloud)) == 1


def test_yandex_cannot_confirm_a_vm_packer_already_deleted(repo, cloud, monkeypatch):
    # Packer's cleanup destroys the VM before the build ends; with no VM to ask
    # about, a lost session stops the build instead of retrying blindly.
    monkeypatch.setenv("EVERBAKE_STANDIN_LOSE", "*=preempt")
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    assert "so not retried" in str(failure.value) and len(runs(cloud)) == 1
    assert any(method == "InstanceService/List" for method, _ in cloud["yc"].calls)


def test_yandex_store_confirms_a_stopped_build_vm(yandex_store, yc):
    from yandex.cloud.compute.v1 import instance_pb2

    yc.add_instance(
        FOLDER, "everbake-image-stopped", "ru-central1-a", instance_pb2.Instance.STOPPED
    )
    yc.add_instance(FOLDER, "everbake-image-running", "ru-central1-a")
    assert yandex_store.build_vm_lost("ru-central1-a", "everbake-image-stopped") is True
    assert yandex_store.build_vm_lost("ru-central1-a", "everbake-image-running") is False
    assert yandex_store.build_vm_lost("ru-central1-a", "everbake-image-gone") is False
    assert yandex_store.build_vm_lost("ru-central1-b", "everbake-image-stopped") is False


def test_a_real_failure_stops_at_once_with_the_log_tail(repo, cloud, monkeypatch):
    monkeypatch.setenv("EVERBAKE_STANDIN_FAIL", "apt-get install coinor-cbc: E: Unable to locate")
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    message = str(failure.value)
    assert "was not lost, so not retried" in message and "Unable to locate" in message
    assert len(runs(cloud)) == 1
    assert not list((repo / "dist" / "builds" / "gcp").glob("everbake-cloudtest-*.json"))


# ------------------------------------------------------- lookups and credentials


@pytest.mark.parametrize("status", [401, 500])
def test_gcp_lookup_failure_stops_before_packer(repo, cloud, status):
    cloud["gce"].fail(status, "/global/images")
    expected = CredentialsError if status == 401 else CloudError
    with pytest.raises(expected) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert "\n" not in str(failure.value)
    assert runs(cloud) == [] and not (repo / "build" / "gcp").exists()


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL], ids=["auth", "internal"]
)
def test_yandex_lookup_failure_stops_before_packer(repo, cloud, code):
    cloud["yc"].fail(code, "ImageService/List")
    expected = CredentialsError if code == grpc.StatusCode.UNAUTHENTICATED else CloudError
    with pytest.raises(expected):
        build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    assert runs(cloud) == []


def test_a_base_lookup_failure_stops_too(repo, cloud):
    # The image lookup passes (nothing found), the base lookup fails: no guessing.
    spec = spec_in(repo)
    calls = []
    original = cloud["gce"].handle

    def handle(req):
        calls.append(req.query.get("filter", [""])[0])
        if calls[-1] == f'family = "{naming.family(spec, "base")}"':
            return 500, {"error": {"code": 500, "message": "backend", "errors": []}}
        return original(req)

    cloud["gce"].handle = handle
    with pytest.raises(CloudError):
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert runs(cloud) == []
    assert f'family = "{naming.family(spec, "image")}"' in calls  # the image lookup came first


@pytest.mark.parametrize(
    ("provider", "unset", "fix"),
    [
        ("gcp", "GOOGLE_CLOUD_PROJECT", "export GOOGLE_CLOUD_PROJECT=<project>"),
        ("yandex", "YC_FOLDER_ID", "export YC_FOLDER_ID=<folder_id>"),
        ("yandex", "YC_TOKEN", "YC_TOKEN"),
    ],
)
def test_missing_settings_are_one_clear_line(provider, unset, fix, repo, cloud, monkeypatch):
    monkeypatch.delenv(unset)
    with pytest.raises(CredentialsError) as failure:
        build_image("cloudtest", get(provider), images_dir=repo / "images")
    assert "\n" not in str(failure.value) and fix in str(failure.value)
    assert runs(cloud) == []


def test_gcp_without_any_credentials_is_one_line(repo, cloud, monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server either
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(CredentialsError) as failure:
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert "\n" not in str(failure.value) and "gcloud auth application-default login" in str(
        failure.value
    )


def test_missing_embed_secret_fails_before_any_build(repo, cloud, monkeypatch):
    monkeypatch.delenv("EVERBAKE_TEST_LICENCE")
    with pytest.raises(CredentialsError, match="EVERBAKE_TEST_LICENCE"):
        build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert runs(cloud) == []


# ----------------------------------------------------------------------- --force


def test_force_refuses_to_replace_a_published_image(repo, cloud):
    first = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    published = repo / "dist/resources/cloudtest-gcp.json"
    published.parent.mkdir(parents=True)
    published.write_text(json.dumps({"provider": "gcp", "image": {"name": first.image}}))
    with pytest.raises(BuildError) as failure:
        build_image("cloudtest", get("gcp"), force=True, images_dir=repo / "images")
    message = str(failure.value)
    assert "--replace-published" in message and str(published) in message
    assert len(runs(cloud)) == 2  # nothing was built or deleted
    assert first.image in images_in(cloud, "gcp")


def test_force_replaces_an_unpublished_image_saying_so(repo, cloud, capfd):
    first = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    capfd.readouterr()
    again = build_image("cloudtest", get("gcp"), force=True, images_dir=repo / "images")
    assert not again.up_to_date and again.image == first.image
    assert len(runs(cloud)) == 3  # base, image, and the image again
    assert "will be DELETED and replaced" in capfd.readouterr().err


def test_force_with_confirmation_replaces_a_yandex_image(repo, cloud, capfd):
    from everbake.bake.cloud_steps import build_cloud

    first = build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    capfd.readouterr()
    again = build_cloud(spec_in(repo), get("yandex"), force=True, replace_published=True)
    assert not again.up_to_date
    assert again.record["image_id"] != first.record["image_id"]
    assert again.record["replaced"]["image_id"] == first.record["image_id"]
    assert again.record["base"]["built"] is False  # --force rebuilds the image layer only
    assert images_in(cloud, "yandex") == {first.image, first.record["base"]["image_name"]}
    err = capfd.readouterr().err
    assert "will be DELETED and replaced" in err
    # Built under a temporary name first, swapped in afterwards.
    assert f"yandex: replacing {first.image}" in err
    assert again.record["image_name"] == first.image
    # Only the image layer was rendered again: the base's files keep the base's name.
    base_vars = json.loads(
        (repo / "build/yandex/cloudtest/base/inputs.auto.pkrvars.json").read_text()
    )
    assert base_vars["image_name"] == first.record["base"]["image_name"]


def test_a_failed_yandex_force_rebuild_keeps_the_old_image(repo, cloud, monkeypatch):
    from everbake.bake.cloud_steps import build_cloud

    first = build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    before = {i.name: i.id for i in cloud["yc"].images.values()}
    monkeypatch.setenv("EVERBAKE_STANDIN_FAIL", "pip install highspy==9.9")
    with pytest.raises(BuildError):
        build_cloud(spec_in(repo), get("yandex"), force=True, replace_published=True)
    assert {i.name: i.id for i in cloud["yc"].images.values()} == before
    assert first.image in before


def test_a_yandex_force_rebuild_finishes_an_interrupted_swap_first(repo, cloud, capfd):
    from everbake.bake.cloud_steps import build_cloud

    first = build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    # As if the last replacement deleted the old image but could not rename the new one.
    image = cloud["yc"].images[first.record["image_id"]]
    image.name = first.image + "-new"
    again = build_cloud(spec_in(repo), get("yandex"), force=True, replace_published=True)
    assert again.image == first.image and again.record["image_id"] != first.record["image_id"]
    assert images_in(cloud, "yandex") == {first.image, first.record["base"]["image_name"]}
    assert f"replacing nothing by {first.record['image_id']}" in capfd.readouterr().err


def test_a_yandex_force_rebuild_clears_a_leftover_temporary_image(repo, cloud):
    from everbake.bake.cloud_steps import build_cloud

    first = build_image("cloudtest", get("yandex"), images_dir=repo / "images")
    leftover = cloud["yc"].add_image(FOLDER, first.image + "-new", "everbake-cloudtest", {})
    again = build_cloud(spec_in(repo), get("yandex"), force=True, replace_published=True)
    names = images_in(cloud, "yandex")
    assert leftover.id not in {i.id for i in cloud["yc"].images.values()}
    assert first.image + "-new" not in names and again.image == first.image in names


# ------------------------------------------------------- several images (CI)


def test_ci_run_builds_what_changed_and_only_that(repo, cloud, capfd):
    from everbake.bake.many import build_images

    pinned = (repo / "images" / "cloudtest.toml").read_text()
    (repo / "images" / "cloudtwo.toml").write_text(
        pinned.replace('name = "cloudtest"', 'name = "cloudtwo"').replace(
            "everbake-cloudtest", "everbake-cloudtwo"
        )
    )
    names = ["cloudtest", "cloudtwo"]
    first = build_images(names, [get("gcp"), get("yandex")], images_dir=repo / "images")
    assert [(o.provider, o.up_to_date) for o in first] == [
        ("gcp", False),
        ("yandex", False),
        ("gcp", False),
        ("yandex", False),
    ]
    assert len(runs(cloud)) == 8  # base and image layer of each
    assert "built 4 (" in capfd.readouterr().err

    # A solver version moves in one spec: only that spec's images are rebuilt.
    two = repo / "images" / "cloudtwo.toml"
    two.write_text(two.read_text().replace('version = "1.8.1"', 'version = "1.8.0"'))
    again = build_images(names, [get("gcp"), get("yandex")], images_dir=repo / "images")
    assert [o.up_to_date for o in again] == [True, True, False, False]
    assert len(runs(cloud)) == 12
    err = capfd.readouterr().err
    assert "built 2 (gcp:everbake-cloudtwo-" in err
    assert "up to date 2 (gcp:everbake-cloudtest-" in err


def test_ci_run_with_a_bad_spec_builds_nothing(repo, cloud):
    from everbake.bake.many import build_images

    (repo / "images" / "broken.toml").write_text('name = "broken"\nfamliy = "x"\n')
    with pytest.raises(SpecError) as failure:
        build_images(["all"], [get("gcp")], images_dir=repo / "images")
    assert "famliy" in str(failure.value)
    assert runs(cloud) == []


def test_a_build_that_waited_for_another_takes_the_image_it_made(repo, cloud, capfd):
    import fcntl
    import threading

    spec = spec_in(repo)
    fps = fingerprints(spec)
    lock_path = repo / "build" / "gcp" / ".cloudtest.lock"
    lock_path.parent.mkdir(parents=True)
    outcome = []
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # "another build" holds the lock
        worker = threading.Thread(
            target=lambda: outcome.append(
                build_image("cloudtest", get("gcp"), images_dir=repo / "images")
            )
        )
        worker.start()
        gce = cloud["gce"]
        said = ""
        while "waiting for another build" not in said:
            worker.join(0.05)  # it looked once, found nothing, and now waits for the lock
            said += capfd.readouterr().err
        # ... then the other build finishes the very image and lets go.
        seed_labels = {"everbake-fingerprint": fps.image[:48]}
        gce.add_image(PROJECT, naming.image_name(spec, fps), naming.family(spec), seed_labels)
    worker.join(60)
    assert outcome and outcome[0].up_to_date
    assert runs(cloud) == []  # nothing built twice


@pytest.mark.parametrize("provider", ["gcp", "yandex"])
def test_an_unpinned_agent_is_refused_before_anything_starts(provider, repo, cloud):
    path = repo / "images" / "cloudtest.toml"
    path.write_text(SPEC)  # no [agent] sha256
    with pytest.raises(SpecError) as caught:
        build_image("cloudtest", get(provider), images_dir=repo / "images")
    message = str(caught.value)
    assert "\n" not in message and "[agent] sha256 is not set" in message
    assert "invoke pin-agent --image cloudtest" in message and str(path) in message
    assert runs(cloud) == [] and cloud["gce"].state.requests == [] and cloud["yc"].calls == []


def test_an_image_without_its_agent_never_passes_for_one_with_it(repo, cloud, capfd):
    # The pinned agent cannot be reached and is optional: the image is built without
    # it, under a fingerprint that says so ("none"), and found again while that lasts.
    import http.server
    import socket
    import threading

    archive = repo / "agent.tgz"
    fetched = fetch_agent(AgentSource("agent-src", "test", None, True), archive, repo)
    assert fetched is not None
    body = archive.read_bytes()
    with socket.socket() as probe:  # a port nobody listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = repo / "images" / "cloudtest.toml"
    text = path.read_text().replace(
        'source = "agent-src"', f'source = "http://127.0.0.1:{port}/agent-{{ref}}.tgz"'
    )
    path.write_text(text.replace('ref = "test"\n', 'ref = "test"\nrequired = false\n'))
    spec = spec_in(repo)
    assert spec.agent.sha256 == fetched[1] and not spec.agent.required
    skipped = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert skipped.record["fingerprints"]["image"] == fingerprints(spec, "none").image
    assert skipped.image != naming.image_name(spec, fingerprints(spec))
    assert "building WITHOUT the Everest agent" in capfd.readouterr().err
    again = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    assert again.up_to_date and again.image == skipped.image

    # The agent is back: the skipped image is not up to date, the agent is baked.
    class Archive(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Archive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        baked = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    finally:
        server.shutdown()
        server.server_close()
    assert not baked.up_to_date
    assert baked.record["fingerprints"]["image"] == fingerprints(spec).image
    assert baked.image != skipped.image
    assert not list((repo / "build" / "gcp").glob(".*.agent-*"))  # fetched copies dropped


def test_a_failed_forced_gcp_rebuild_keeps_the_image_it_replaces(repo, cloud, monkeypatch, capfd):
    # googlecompute's -force deletes the old image first; the build never uses it.
    first = build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    before = set(cloud["gce"].image_names(PROJECT))
    monkeypatch.setenv("EVERBAKE_STANDIN_FAIL", "pip install highspy==9.9")
    with pytest.raises(BuildError):
        build_image("cloudtest", get("gcp"), force=True, images_dir=repo / "images")
    assert set(cloud["gce"].image_names(PROJECT)) == before and first.image in before
    assert all("-force" not in run["argv"] for run in runs(cloud))
    monkeypatch.delenv("EVERBAKE_STANDIN_FAIL")
    again = build_image("cloudtest", get("gcp"), force=True, images_dir=repo / "images")
    assert again.image == first.image and again.record["image_id"] != first.record["image_id"]
    assert set(cloud["gce"].image_names(PROJECT)) == before  # swapped in under its own name
    assert f"gcp: replacing {first.image}" in capfd.readouterr().err


@pytest.mark.parametrize(("os_login", "user"), [(False, "packer"), (True, "@login")])
def test_hygiene_is_told_which_user_logged_in(repo, cloud, os_login, user):
    # With OS Login the plugin logs in as the OS Login user, whose name only the VM
    # knows: hygiene then removes the user sudo names (provisioning/90-hygiene.sh).
    if os_login:
        path = repo / "images" / "cloudtest.toml"
        path.write_text(
            path.read_text().replace("[build.gcp]\n", "[build.gcp]\nuse_os_login = true\n")
        )
    build_image("cloudtest", get("gcp"), images_dir=repo / "images")
    values = json.loads((repo / "build/gcp/cloudtest/image/inputs.auto.pkrvars.json").read_text())
    assert f"EB_BUILD_USER={user}" in values["script_env"]
    assert values["use_os_login"] is os_login
