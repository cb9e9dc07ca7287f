"""Provisioning scripts against their contract (docs/internals.md) and shellcheck."""

from __future__ import annotations

import re
import shutil
import subprocess
from hashlib import sha256
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "provisioning"
SCRIPTS = sorted(PROVISIONING.glob("[0-9][0-9]-*.sh"))
CLOUD_SCRIPTS = sorted((PROVISIONING / "cloud").glob("*.sh"))  # cloud build VMs only
ALL_SHELL = [
    *SCRIPTS,
    *CLOUD_SCRIPTS,
    *sorted((PROVISIONING / "solvers").glob("*.sh")),
    REPO / "examples/transport/job/make_data.sh",
    REPO / "tests/fixtures/agent-src/bin/start.sh",
]
# An EB_* name read by a script: $EB_X, ${EB_X...}, or a ": ${EB_X:?...}" guard.
_READ = re.compile(r"\$\{?(EB_[A-Z0-9_]+)")


def internals_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(script -> layer, EB_ variable -> 'used by') from the tables in internals.md."""
    scripts, variables = {}, {}
    for line in (REPO / "docs/internals.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"\d\d-[a-z0-9-]+\.sh", cells[1]):
            scripts[cells[1]] = cells[0]
        elif len(cells) == 3 and re.fullmatch(r"EB_[A-Z0-9_]+", cells[0]):
            variables[cells[0]] = cells[2]
    return scripts, variables


def test_the_tables_parse():
    scripts, variables = internals_tables()
    assert len(scripts) >= 8 and "EB_STAGING" in variables


def test_scripts_are_exactly_those_in_the_contract():
    scripts, _ = internals_tables()
    assert sorted(p.name for p in SCRIPTS) == sorted(scripts)


@pytest.mark.parametrize("script", SCRIPTS + CLOUD_SCRIPTS, ids=lambda p: p.name)
def test_every_variable_a_script_reads_is_documented(script: Path):
    _, variables = internals_tables()
    read = set(_READ.findall(script.read_text()))
    undocumented = sorted(read - set(variables))
    assert not undocumented, f"{script.name} reads {undocumented}, not in docs/internals.md"


def test_every_documented_variable_is_read_by_some_script():
    _, variables = internals_tables()
    read = set().union(*(_READ.findall(p.read_text()) for p in SCRIPTS + CLOUD_SCRIPTS))
    assert sorted(set(variables) - read) == []


@pytest.mark.parametrize("script", ALL_SHELL, ids=lambda p: p.name)
def test_strict_mode_and_shebang(script: Path):
    lines = script.read_text().splitlines()
    assert lines[0] in ("#!/usr/bin/env bash", "#!/bin/sh")
    if lines[0].endswith("bash"):
        assert "set -euo pipefail" in lines


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_clean():
    done = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, ALL_SHELL)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS + CLOUD_SCRIPTS, ids=lambda p: p.name)
def test_failures_name_the_script(script: Path):
    text = script.read_text()
    assert f"me={script.name}" in text
    assert "trap 'echo \"$me: failed at line $LINENO" in text


def test_script_solver_pins_match_their_files():
    for spec in sorted((REPO / "images").glob("*.toml")):
        for solver in tomllib.loads(spec.read_text()).get("solvers", []):
            if solver.get("install") == "script":
                body = (REPO / solver["script"]).read_bytes()
                assert sha256(body).hexdigest() == solver["sha256"], (
                    f"{spec.name}: {solver['name']}"
                )


def test_cloud_scripts_exist_and_the_first_boot_step_is_among_them():
    assert [p.name for p in CLOUD_SCRIPTS] == ["first-boot.sh"]


@pytest.mark.parametrize("script", ["10-base.sh", "20-python.sh", "30-solvers.sh"])
def test_apt_calls_wait_for_a_held_lock(script: str):
    # On a fresh cloud VM apt-daily may hold the lock (compute-image-packages#815).
    text = (PROVISIONING / script).read_text()
    calls = re.findall(r"^\s*apt-get .*$", text, re.M)  # commands, not messages
    assert calls and all('"${apt_lock[@]}"' in call for call in calls), calls
    assert "apt_lock=(-o DPkg::Lock::Timeout=" in text


def test_the_agent_token_is_read_from_the_metadata_ip():
    # Yandex documents only 169.254.169.254 (cloud-sdks.md); GCE serves it too.
    text = (PROVISIONING / "50-agent.sh").read_text()
    assert 'METADATA = "http://169.254.169.254/computeMetadata/v1/instance/attributes/"' in text
    assert "metadata.google.internal" not in text
