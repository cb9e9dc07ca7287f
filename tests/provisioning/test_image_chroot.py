"""Every provisioning script, in order, in a fresh Debian 12 chroot: each run
twice (the second changes nothing), the verify step solving with HiGHS, CBC
and GLPK, hygiene last, and then the example job run by the real runtime as
the image's user, its objective checked against expected.json."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .chroot_kit import CHROOT, PATH, REPO, STAGING, ok, proc_mounted, run, snapshot, stage_scripts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mount)"),
]
GLPK = REPO / "provisioning/solvers/glpk.sh"
EXAMPLE = REPO / "examples/transport"


def runtime_wheel(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "runtime"  # setuptools writes build/ beside the source: use a copy
    shutil.copytree(REPO / "runtime", src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # The interpreter running the tests has the setuptools runtime/pyproject.toml needs.
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*argv, "-w", str(dest), str(src)], check=True)


def test_all_scripts_then_the_example_job(root: Path, tmp_path: Path):
    st = stage_scripts(root)
    (st / "solvers").mkdir()
    shutil.copy(GLPK, st / "solvers/glpk.sh")
    runtime_wheel(tmp_path, st)
    (st / "image.json").write_text('{"image": "test"}\n')
    env = {
        "EB_STAGING": STAGING,
        "EB_TIMEZONE": "Europe/Berlin",
        "EB_USER": "everest",
        "EB_APT_PACKAGES": "",
        "EB_KEEP_CA_CERTS": "0",
        "EB_PYTHON_VERSION": "3.11",
        "EB_VENV": "/opt/everest/venv",
        "EB_PYTHON_PACKAGES": "pulp==2.9.0",
        "EB_PIP_SOLVERS": "highspy==1.8.1",
        "EB_APT_SOLVERS": "coinor-cbc=2.10.8+ds1-1",
        "EB_SCRIPT_SOLVERS": "glpk=" + hashlib.sha256(GLPK.read_bytes()).hexdigest() + "=5.0-1",
        "EB_VERIFY_SOLVERS": "highs cbc glpk",
        "EB_AGENT_ARCHIVE": "",
        "EB_EMBED_SECRETS": "",
    }
    wrong_python = run(root, "20-python.sh", {**env, "EB_PYTHON_VERSION": "3.12"})
    assert wrong_python.returncode != 0
    assert "20-python.sh: EB_PYTHON_VERSION=3.12 but this base's python3 is 3.11" in (
        wrong_python.stderr
    )
    scripts_only = {**env, "EB_PIP_SOLVERS": "", "EB_APT_SOLVERS": ""}
    wrong_pin = run(
        root, "30-solvers.sh", {**scripts_only, "EB_SCRIPT_SOLVERS": "glpk=" + "a" * 64 + "=5.0-1"}
    )
    assert "solver script glpk.sh has sha256" in wrong_pin.stderr
    unversioned = run(
        root, "30-solvers.sh", {**scripts_only, "EB_SCRIPT_SOLVERS": "glpk=" + "a" * 64}
    )
    assert "is not name=<64 hex sha256>=<version>" in unversioned.stderr
    assert not (root / "usr/bin/glpsol").exists()

    outputs = {}
    for script in ("10-base.sh", "20-python.sh", "30-solvers.sh", "50-agent.sh", "60-runtime.sh"):
        outputs[script] = ok(run(root, script, env))
        before = snapshot(root)
        ok(run(root, script, env))
        assert snapshot(root) == before, f"a second run of {script} changed the tree"
    for script in ("70-secrets.sh", "80-verify.sh"):
        outputs[script] = ok(run(root, script, env))
    assert "skipping the Everest agent" in outputs["50-agent.sh"]
    assert "GLPSOL--GLPK LP/MIP Solver 5.0" in outputs["30-solvers.sh"]  # the spec's version
    verify = outputs["80-verify.sh"]
    for solver in ("highs", "cbc", "glpk"):
        assert f"80-verify.sh: {solver}: LP objective 11 (expected 11)" in verify
        assert f"80-verify.sh: {solver}: MIP objective 20 (expected 20)" in verify
    assert "80-verify.sh: runtime: everest-run-task" in verify
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert "90-hygiene.sh: clean" in ok(run(root, "90-hygiene.sh", env))

    # The baked image at work: the example job, run as the image's user.
    task = root / "home/everest/task"
    task.mkdir()
    model = root / "home/everest/model"
    shutil.copytree(EXAMPLE, model, ignore=shutil.ignore_patterns("job"))
    for name in ("params.json", "data.tar.gz"):
        shutil.copy(EXAMPLE / "job" / name, task / name)
    subprocess.run([CHROOT, str(root), "chown", "-R", "everest:", "/home/everest"], check=True)
    with proc_mounted(root):
        done = subprocess.run(
            [CHROOT, "--userspec=everest:everest", str(root), "/usr/bin/env", "-i",
             f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/home/everest", "sh", "-c",
             "cd /home/everest/task && everest-run-task --model /home/everest/model"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "##status optimal: cost 153.675" in done.stdout
    expected = json.loads((EXAMPLE / "job/expected.json").read_text())
    with zipfile.ZipFile(task / "results.zip") as results:
        summary = json.loads(results.read("out/summary.json"))
        assert "out/solution.csv" in results.namelist()
    assert abs(summary["objective"] - expected["objective"]) <= expected["tolerance"]
    assert (task / "status.txt").read_text().strip() == "optimal: cost 153.675"
    (root / "etc/resolv.conf").unlink()
