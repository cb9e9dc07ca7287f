"""The gc-images task end to end: real CLI parsing, real SDKs, the fakes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.cloud.conftest import FOLDER, PROJECT, ROOT, service_account_key

pytestmark = pytest.mark.timeout(120)

FAMILY = "everbake-optimization"  # images/optimization.toml
NOW = datetime.now(timezone.utc)
PROGRAM = (
    "from invoke import Program, Collection; from everbake import tasks_cloud; "
    "Program(namespace=Collection.from_module(tasks_cloud)).run()"
)


def run(args, env, cwd, task="gc-images"):
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "YC_", "EVERBAKE_"))
    }
    base["PYTHONPATH"] = str(ROOT)
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, task, *args],
        env=base,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.fixture
def gcp_env(gce, tmp_path):
    email = f"gc@{PROJECT}.iam.gserviceaccount.com"
    key_file = service_account_key(tmp_path / "sa.json", f"{gce.endpoint}/token", email)
    pem = json.loads(key_file.read_text())["private_key"]
    gce.state.require_token = gce.state.issued_token
    gce.state.accept_jwt_issuer = email
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "EVERBAKE_GCE_ENDPOINT": gce.endpoint,
    }, pem


def seed_gce(gce):
    for i in range(4):
        gce.add_image(PROJECT, f"{FAMILY}-{i}", FAMILY, created=NOW - timedelta(days=10 - i))
    gce.add_image(PROJECT, "someone-else", "other", created=NOW - timedelta(days=100))


def test_gcp_dry_run_lists_and_changes_nothing(gce, gcp_env, tmp_path):
    env, pem = gcp_env
    seed_gce(gce)
    result = run(
        ["--provider", "gcp", "--image", "optimization", "--keep", "2", "--dry-run"], env, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"deprecate {FAMILY}-1" in result.stdout and f"deprecate {FAMILY}-0" in result.stdout
    assert "dry run" in result.stderr
    assert all(r.method == "GET" for r in gce.state.requests if r.path != "/token")
    assert pem.splitlines()[1] not in result.stdout + result.stderr


def test_gcp_protects_published_images(gce, gcp_env, tmp_path):
    env, _ = gcp_env
    seed_gce(gce)
    (tmp_path / "dist/resources").mkdir(parents=True)
    (tmp_path / "dist/resources/optimization-gcp.json").write_text(
        json.dumps({"provider": "gcp", "image": {"name": f"{FAMILY}-0", "family": FAMILY}})
    )
    # Every image everbake builds has a build record; that alone protects nothing.
    (tmp_path / "dist/builds/gcp").mkdir(parents=True)
    for i in range(4):
        (tmp_path / f"dist/builds/gcp/{FAMILY}-{i}.json").write_text(
            json.dumps({"image_name": f"{FAMILY}-{i}", "provider": "gcp"})
        )
    result = run(["--provider", "gcp", "--image", "optimization", "--keep", "2"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "deprecated" in gce.image(PROJECT, f"{FAMILY}-1")
    assert "deprecated" not in gce.image(PROJECT, f"{FAMILY}-0")
    assert "named by a published record" in result.stdout
    assert "deprecated" not in gce.image(PROJECT, f"{FAMILY}-2")
    assert "deprecated" not in gce.image(PROJECT, "someone-else")


def test_gcp_server_error_is_one_line_and_changes_nothing(gce, gcp_env, tmp_path):
    env, _ = gcp_env
    seed_gce(gce)
    gce.fail(500, "/global/images")
    result = run(["--provider", "gcp", "--image", "optimization", "--keep", "1"], env, tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gcp: cannot list the images" in errors[0]
    assert "Traceback" not in result.stderr


def test_yandex_deletes_beyond_keep(yc, tmp_path):
    for i in range(3):
        yc.add_image(FOLDER, f"{FAMILY}-{i}", FAMILY, created=NOW - timedelta(days=10 - i))
    env = yc.client_env(tmp_path, FOLDER)
    result = run(["--provider", "yandex", "--image", "optimization", "--keep", "1"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert yc.image_names(FOLDER) == {f"{FAMILY}-2"}
    assert yc.iam_token not in result.stdout + result.stderr


def test_missing_credentials_is_one_clear_line(tmp_path):
    env = {"YC_FOLDER_ID": FOLDER, "EVERBAKE_YANDEX_ENDPOINT": "127.0.0.1:9"}
    result = run(["--provider", "yandex", "--image", "optimization"], env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: yandex: no credentials") and "YC_TOKEN" in result.stderr


def test_unknown_provider_lists_choices(tmp_path):
    result = run(["--provider", "aws", "--image", "optimization"], {}, tmp_path)
    assert result.returncode == 1
    assert "choose one of: local, gcp, yandex" in result.stderr


# ------------------------------------------------------------------ local images


def local_images(dist, ages_in_days):
    """Tarballs in dist/local, one per age, oldest last; returns their names newest first."""
    (dist / "local").mkdir(parents=True, exist_ok=True)
    names = []
    for i, age in enumerate(ages_in_days):
        name = f"{FAMILY}-{i:012x}"
        tarball = dist / "local" / f"{name}.tar.zst"
        tarball.write_bytes(b"image %d" % i)
        stamp = (NOW - timedelta(days=age)).timestamp()
        os.utime(tarball, (stamp, stamp))
        names.append(name)
    return names


def test_local_keeps_newest_and_published_deletes_the_rest_with_their_copies(tmp_path):
    dist = tmp_path / "dist"
    names = local_images(dist, [1, 2, 3, 4, 5])
    copy = dist / "local" / f"{names[4]}.123-456.rootfs"
    (copy / "etc").mkdir(parents=True)
    other = dist / "local" / f"{FAMILY}-extra-{'a' * 12}.tar.zst"  # another family, same prefix
    other.write_bytes(b"other")
    (dist / "resources").mkdir()
    (dist / "resources" / "opt.json").write_text(
        json.dumps({"provider": "local", "image": {"name": names[3]}})
    )
    dry = run(
        ["--provider", "local", "--image", "optimization", "--keep", "2", "--dry-run"], {}, tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert f"delete    {names[2]}" in dry.stdout and f"keep      {names[3]}" in dry.stdout
    assert len(list((dist / "local").iterdir())) == 7  # nothing done

    done = run(["--provider", "local", "--image", "optimization", "--keep", "2"], {}, tmp_path)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in (dist / "local").iterdir())
    assert left == sorted([f"{n}.tar.zst" for n in (names[0], names[1], names[3])] + [other.name])


def test_local_refuses_an_image_a_run_is_using(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting an overlay needs root")
    dist = tmp_path / "dist"
    names = local_images(dist, [1, 2])
    lower = dist / "local" / f"{names[1]}.9-9.rootfs"
    (lower / "etc").mkdir(parents=True)
    work, merged = tmp_path / "work", tmp_path / "merged"
    for path in (work / "upper", work / "scratch", merged):
        path.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={work / 'upper'},workdir={work / 'scratch'}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        busy = run(["--provider", "local", "--image", "optimization", "--keep", "1"], {}, tmp_path)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert busy.returncode == 1
    assert busy.stderr.count("error:") == 1 and "in use by a build or run-local" in busy.stderr
    assert "Traceback" not in busy.stderr
    assert (dist / "local" / f"{names[1]}.tar.zst").is_file() and lower.is_dir()

    again = run(["--provider", "local", "--image", "optimization", "--keep", "1"], {}, tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (dist / "local").iterdir()) == [f"{names[0]}.tar.zst"]


def test_local_base_caches_keep_the_newest_and_every_spec_s_current_base(tmp_path):
    from everbake.fingerprint import fingerprints
    from everbake.spec import load_spec

    cache = tmp_path / "cache"
    cache.mkdir()
    current = f"base-{fingerprints(load_spec('optimization')).base}"
    names = [current] + [f"base-{c * 64}" for c in "abc"]
    for age, name in zip([30, 3, 2, 1], names, strict=True):  # the current base: oldest
        tarball = cache / f"{name}.tar.zst"
        tarball.write_bytes(b"base")
        stamp = (NOW - timedelta(days=age)).timestamp()
        os.utime(tarball, (stamp, stamp))
    (cache / f"{names[1]}.rootfs" / "usr/bin").mkdir(parents=True)
    (cache / "unrelated.tar.zst").write_bytes(b"not ours")
    args = ["--provider", "local", "--image", "optimization", "--layer", "base", "--keep", "1"]
    env = {"EVERBAKE_LOCAL_CACHE": str(cache)}
    result = run(args, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"keep      {current}  (the current base of optimization" in result.stdout
    left = sorted(p.name for p in cache.iterdir())
    assert left == sorted([f"{current}.tar.zst", f"{names[3]}.tar.zst", "unrelated.tar.zst"])
