"""The invoke tasks and the everbake console script, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def run(
    *args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    if "EVERBAKE_DEBUG" not in (env or {}):
        full_env.pop("EVERBAKE_DEBUG", None)  # errors must be one line unless asked
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def everbake(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "import sys; from everbake.cli import main; sys.argv[0] = 'everbake'; main()"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_list_shows_every_task_with_help():
    out = run("--list").stdout
    for name in ("check", "render", "validate", "plan"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split()) > 2, f"{name} has no help text"


def test_typo_fails_with_suggestion_and_no_traceback(tmp_path):
    spec = tmp_path / "typo.toml"
    spec.write_text('name = "typo"\nfamily = "everbake-typo"\ndescripton = "x"\n')
    result = run("validate", "--image", str(spec))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"error: {spec}:3: descripton: unknown key; did you mean 'description'?" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    spec = tmp_path / "typo.toml"
    spec.write_text('name = "typo"\nfamily = "everbake-typo"\ndescripton = "x"\n')
    result = run("plan", "--image", str(spec), env={"EVERBAKE_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_unknown_provider_lists_choices():
    result = run("plan", "--provider", "gpc")
    assert result.returncode == 1
    assert "did you mean 'gcp'?" in result.stderr and "local, gcp, yandex" in result.stderr


def test_plan_json_for_scripts():
    result = run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    images = {r["image"] for r in rows}
    assert {"optimization", "scip"} <= images
    for row in rows:
        assert {"image", "provider", "fingerprint", "image_name", "layer"} <= set(row)
        assert row["image_name"].endswith(row["fingerprint"][:12])


def test_plan_table_shows_both_layers():
    out = run("plan", "--image", "optimization", "--provider", "gcp", "--offline").stdout
    lines = out.splitlines()
    assert lines[0].split() == [
        "IMAGE",
        "PROVIDER",
        "LAYER",
        "FINGERPRINT",
        "IMAGE_NAME",
        "EXISTS",
        "ACTION",
    ]
    assert all("unknown" in line for line in lines[1:])
    assert [line.split()[2] for line in lines[1:]] == ["base", "image"]


def test_validate_one_image(tmp_path):
    env = {
        "INVOKE_EVERBAKE_BUILD_DIR": str(tmp_path / "build"),
        "INVOKE_EVERBAKE_DIST_DIR": str(tmp_path / "dist"),
    }
    result = run("validate", "--image", "optimization", "--provider", "local,gcp", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build/gcp/optimization/base/source.pkr.hcl").is_file()
    assert (tmp_path / "build/local/optimization/build.pkr.hcl").is_file()


def test_console_script_works_outside_the_repo(tmp_path):
    result = everbake("plan", "--format", "json", "--image", "scip", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {r["provider"] for r in json.loads(result.stdout)} == {"local", "gcp", "yandex"}
    result = everbake("render", "--image", "optimization", "--provider", "local", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build/local/optimization/source.pkr.hcl").is_file()


def test_check_prints_fixes():
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": "",
        "YC_TOKEN": "",
        "YC_SERVICE_ACCOUNT_KEY_FILE": "",
        "HOME": "/nonexistent",
    }
    result = run("check", "--provider", "gcp", env=env)
    assert result.returncode == 1
    assert "fix: gcloud auth application-default login" in result.stdout
    assert run("check", env=env).returncode == 0  # without --provider: information only


def configured_images(tmp_path: Path, name: str = "cfgtest") -> dict:
    """An images dir of one spec (the default image renamed), named by the config alone."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "defaults.toml").write_text((REPO / "images/defaults.toml").read_text())
    text = (REPO / "images/optimization.toml").read_text()
    text = text.replace('name = "optimization"', f'name = "{name}"', 1)
    text = text.replace('family = "everbake-optimization"', f'family = "everbake-{name}"', 1)
    (images / f"{name}.toml").write_text(text)
    return {
        "INVOKE_EVERBAKE_IMAGES_DIR": str(images),
        "INVOKE_EVERBAKE_IMAGE": name,
        "INVOKE_EVERBAKE_BUILD_DIR": str(tmp_path / "build"),
        "INVOKE_EVERBAKE_DIST_DIR": str(tmp_path / "dist"),
        "INVOKE_EVERBAKE_RUNS_DIR": str(tmp_path / "runs"),
    }


def test_plan_reads_the_configured_images_dir(tmp_path):
    env = configured_images(tmp_path)
    result = run("plan", "--format", "json", "--provider", "local", "--offline", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["image"] for r in rows} == {"cfgtest"}
    assert {r["image_name"].rsplit("-", 1)[0] for r in rows} == {
        "everbake-cfgtest",
        "everbake-cfgtest-base",
    }


def test_build_image_and_run_local_take_the_configured_image(tmp_path):
    env = configured_images(tmp_path)
    # A spec error names the configured file: build-image loaded it, not images/optimization.
    spec = tmp_path / "images" / "cfgtest.toml"
    spec.write_text(spec.read_text() + "\n[sytem]\n")
    result = run("build-image", env=env)
    assert result.returncode == 1
    assert str(spec) in result.stderr and "did you mean 'system'" in result.stderr
    # run-local looks for the configured image's build in the configured dist dir.
    spec.write_text(spec.read_text().replace("\n[sytem]\n", ""))
    result = run("run-local", "--job", "examples/transport/job", env=env)
    assert result.returncode == 1
    assert "--image cfgtest: no local image for the current spec" in result.stderr
    assert not (tmp_path / "runs").exists() and not (REPO / "runs" / "cfgtest").exists()


def test_plan_warns_about_an_unpinned_agent_for_clouds_only():
    done = run("plan", "--offline", "--provider", "gcp,local", "--image", "optimization")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr  # gcp; local builds need no pin
    assert "[agent] sha256 is not set, and gcp builds" in warnings[0]
    assert "invoke pin-agent --image optimization" in warnings[0]
