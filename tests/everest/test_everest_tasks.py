"""The Everest tasks run as a user runs them (the everbake console script), against the
fake Everest: one-line errors, no token in any output, the password only on stdin."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.everest.conftest import files_under
from tests.fakes.everest import EverestFake

REPO = Path(__file__).resolve().parents[2]
EP = "/api/everbake/resources"


def everbake(
    *args: str, env: dict[str, str], stdin: str = "", cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    code = "import sys; from everbake.cli import main; sys.argv[0] = 'everbake'; main()"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("EVEREST_", "EVERBAKE_"))}
    full.update({"PYTHONPATH": str(REPO), **env})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # no terminal: getpass reads the password from stdin
    )


def test_login_asks_for_the_password_and_stores_the_token(
    everest: EverestFake, config_home: Path
) -> None:
    env = {"EVEREST_URL": everest.url, "XDG_CONFIG_HOME": str(config_home)}
    done = everbake("everest-login", "--username", "alice", env=env, stdin="alice-password\n")
    assert done.returncode == 0, done.stderr
    path = config_home / "everbake" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert everest.tokens[token] == "alice"
    assert token not in done.stdout + done.stderr
    assert "alice-password" not in done.stdout + done.stderr
    assert f"token stored in {path}" in done.stderr
    # The stored token is used by the next task.
    env["INVOKE_EVEREST_RESOURCE_ENDPOINT"] = EP
    listed = everbake("publish-resource", "--provider", "gcp", "--image", "nope", env=env)
    assert listed.returncode == 1 and "no image spec named 'nope'" in listed.stderr


def test_login_refused_is_one_line(everest: EverestFake, config_home: Path) -> None:
    env = {"EVEREST_URL": everest.url, "XDG_CONFIG_HOME": str(config_home)}
    done = everbake("everest-login", "--username", "alice", env=env, stdin="wrong\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: Everest at {everest.url} refused user 'alice': wrong user name or password"
    ]
    assert "Traceback" not in done.stderr
    assert not (config_home / "everbake" / "token").exists()


def test_publish_create_no_op_and_dry_run(
    everest: EverestFake,
    token: str,
    repo_copy: Path,
    built: Callable[..., dict],
    config_home: Path,
) -> None:
    record = built("gcp")
    env = {
        "EVEREST_URL": everest.url,
        "EVEREST_TOKEN": token,
        "XDG_CONFIG_HOME": str(config_home),
        "INVOKE_EVEREST_RESOURCE_ENDPOINT": EP,
        "INVOKE_EVERBAKE_IMAGES_DIR": str(repo_copy / "images"),
        "INVOKE_EVERBAKE_DIST_DIR": str(repo_copy / "dist"),
    }
    dry = everbake("publish-resource", "--provider", "gcp", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f'+ image.name: "{record["image"]}"' in dry.stdout.splitlines()
    assert "dry run: nothing written or sent" in dry.stderr
    assert everest.resources == {}
    first = everbake("publish-resource", "--provider", "gcp", env=env)
    assert first.returncode == 0, first.stderr
    assert f"resource everbake-optimization-gcp: created at {everest.url}{EP}" in first.stderr
    again = everbake("publish-resource", "--provider", "gcp", env=env)
    assert again.stdout.strip() == "no changes"
    assert "unchanged" in again.stderr
    outputs = dry.stdout + dry.stderr + first.stdout + first.stderr + again.stdout + again.stderr
    assert token not in outputs
    for path in files_under(repo_copy / "dist", config_home):
        assert token.encode() not in path.read_bytes(), path


def test_publish_errors_are_one_line(
    everest: EverestFake, repo_copy: Path, built: Callable[..., dict], config_home: Path
) -> None:
    built("gcp")
    env = {
        "EVEREST_URL": everest.url,
        "XDG_CONFIG_HOME": str(config_home),
        "INVOKE_EVEREST_RESOURCE_ENDPOINT": EP,
        "INVOKE_EVERBAKE_IMAGES_DIR": str(repo_copy / "images"),
        "INVOKE_EVERBAKE_DIST_DIR": str(repo_copy / "dist"),
    }
    cases = {
        ("--provider", "local"): "error: --provider local: give gcp or yandex",
        ("--provider", "gcp"): f"error: no Everest token for {everest.url}; run `invoke "
        "everest-login` or set EVEREST_TOKEN",
    }
    for args, line in cases.items():
        done = everbake("publish-resource", *args, env=env)
        assert done.returncode == 1
        assert [x for x in done.stderr.splitlines() if x.startswith("error:")] == [line]
        assert "Traceback" not in done.stderr
    env["EVEREST_TOKEN"] = "revoked-token-4711"
    done = everbake("publish-resource", "--provider", "gcp", env=env)
    assert done.returncode == 1 and "refused the token (401)" in done.stderr
    assert "revoked-token-4711" not in done.stdout + done.stderr


def test_export_app_task_prints_what_it_wrote(
    repo_copy: Path, tmp_path: Path, config_home: Path
) -> None:
    from tests.everest.test_app_export import _local_record

    _local_record(repo_copy)
    env = {
        "INVOKE_EVERBAKE_IMAGES_DIR": str(repo_copy / "images"),
        "INVOKE_EVERBAKE_DIST_DIR": str(repo_copy / "dist"),
    }
    out = tmp_path / "app"
    done = everbake("export-app", "--output", str(out), "--project", "g/m", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        str(out / "ApplicationFiles" / "bootstrap.sh"),
        str(out / "application.json"),
        str(out / "everbake.json"),
        str(out / "optimization-app.zip"),
    ]
    assert "the command is allowed" in done.stderr
    assert f"import {out / 'optimization-app.zip'} in the Everest web UI" in done.stderr
