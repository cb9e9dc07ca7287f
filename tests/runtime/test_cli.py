"""The three commands: --help/--version, `python -m everest_runtime`, one-line
errors, and lazy imports (start-up stays cheap)."""

from __future__ import annotations

import subprocess

import pytest
from everest_runtime import manifest

from tests.fakes.metadata import MetadataFake
from tests.runtime.cli_env import PYTHON
from tests.runtime.cli_env import clean_env as env

ENTRY_POINTS = {
    "everest-status": "status_main",
    "everest-bootstrap": "bootstrap_main",
    "everest-run-task": "run_task_main",
}


def console_script(name: str, *args: str, cwd=None, **extra: str):
    """What the installed console script runs: the entry point function."""
    code = f"import sys; from everest_runtime.cli import {ENTRY_POINTS[name]} as m; sys.exit(m())"
    return subprocess.run(
        [PYTHON, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env(**extra),
        cwd=cwd,
        timeout=60,
    )


def module(*args: str, cwd=None, **extra: str):
    return subprocess.run(
        [PYTHON, "-m", "everest_runtime", *args],
        capture_output=True,
        text=True,
        env=env(**extra),
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_help_and_version(name):
    helped = console_script(name, "--help")
    assert helped.returncode == 0 and "usage:" in helped.stdout
    version = console_script(name, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"{name} 0.1.0"
    command = name.removeprefix("everest-")
    assert module(command, "--version").stdout.strip() == f"{name} 0.1.0"


def test_help_documents_every_environment_variable():
    text = console_script("everest-bootstrap", "--help").stdout
    for var in (
        "EVEREST_GITLAB_URL",
        "EVEREST_GITLAB_PROJECT",
        "EVEREST_MODEL_REF",
        "EVEREST_SOURCE",
        "EVEREST_ARTIFACT_JOB",
        "EVEREST_ARTIFACT_PATH",
        "EVEREST_MODEL_LOCAL",
        "EVEREST_GITLAB_TOKEN_FILE",
        "EVEREST_GITLAB_TOKEN_METADATA_KEY",
        "EVEREST_METADATA_URL",
        "EVEREST_CACHE_DIR",
        "EVEREST_RETRIES",
        "EVEREST_GRACE_SECONDS",
        "EVEREST_INPUT_NAMES",
        "EVEREST_MAX_INPUT_BYTES",
    ):
        assert var in text.replace("\n", " "), var


def test_module_entry_lists_commands_and_rejects_unknown():
    assert module("--help").returncode == 0
    assert module().returncode == 2
    unknown = module("runtask")
    assert unknown.returncode == 2
    assert "unknown command 'runtask'; choose one of: status, bootstrap, run-task" in unknown.stderr


def test_flag_errors_are_one_line(tmp_path):
    result = console_script("everest-run-task", "--model", str(tmp_path), "--grace", "soon")
    assert result.returncode != 0 and "--grace must be a number, not 'soon'" in result.stderr
    missing = console_script("everest-run-task", cwd=tmp_path)
    assert missing.returncode == 2 and "--model DIR is required" in missing.stderr
    neg = module("run-task", "--model", str(tmp_path), "--max-input-files", "-1")
    assert "--max-input-files must not be negative" in neg.stderr


def test_traceback_only_with_everest_debug(tmp_path):
    quiet = console_script("everest-run-task", "--model", str(tmp_path / "absent"), cwd=tmp_path)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "no such directory" in quiet.stderr
    loud = console_script(
        "everest-run-task", "--model", str(tmp_path / "absent"), cwd=tmp_path, EVEREST_DEBUG="1"
    )
    assert "Traceback" in loud.stderr and "RuntimeFailure" in loud.stderr


def imported_modules(*args: str, cwd=None, **extra: str) -> set[str]:
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "everest_runtime", *args],
        capture_output=True,
        text=True,
        env=env(**extra),
        cwd=cwd,
        timeout=60,
    )
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}


def test_start_up_imports_only_what_the_command_needs(tmp_path):
    help_imports = imported_modules("run-task", "--help")
    assert "everest_runtime.runner" not in help_imports
    assert "ssl" not in help_imports and "urllib.request" not in help_imports
    # Warm cache by full SHA: bootstrap never touches the network stack.
    sha = "0" * 40
    entry = tmp_path / "cache" / sha
    entry.mkdir(parents=True)
    (entry / "everest.toml").write_text('[model]\ncommand = ["true"]\n')
    manifest.write(entry)  # an intact entry (one without a manifest is fetched again)
    warm = imported_modules(
        "bootstrap", "--ref", sha, "--project", "p", "--cache-dir", str(tmp_path / "cache"),
        "--fetch-only", cwd=tmp_path,
    )  # fmt: skip
    assert "everest_runtime.bootstrap" in warm
    assert "urllib.request" not in warm and "ssl" not in warm


def test_the_preemption_watch_does_not_load_urllib(tmp_path):
    # Importing urllib.request (http.client, email, ssl) cost more CPU than the
    # watch's long polls; it runs beside every task on GCE.
    model = tmp_path / "model"
    model.mkdir()
    (model / "everest.toml").write_text(
        '[model]\ncommand = ["python", "-c", "import time; time.sleep(1)"]\n'
    )
    (tmp_path / "params.json").write_text("{}")
    with MetadataFake() as meta:
        loaded = imported_modules(
            "run-task",
            "--model",
            str(model),
            cwd=tmp_path,
            EVEREST_METADATA_URL=meta.url,
            EVEREST_PREEMPTION_WATCH="1",
        )
        assert any(path.endswith("/instance/preempted") for path, _ in meta.requests)
    assert "everest_runtime.preemption" in loaded
    assert "urllib.request" not in loaded and "http.client" not in loaded
