"""Building blocks for the runner's tests: a model made of files, a task
directory, and everest-run-task as a real subprocess."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import zipfile
from pathlib import Path

from tests.runtime.cli_env import PYTHON, clean_env


def make_model(tmp_path: Path, script: str, toml_extra: str = "", name: str = "model") -> Path:
    """A model whose everest.toml runs ``script`` (Python) as m.py."""
    model = tmp_path / name
    model.mkdir()
    (model / "m.py").write_text(script)
    (model / "everest.toml").write_text(f'[model]\ncommand = ["python", "m.py"]\n{toml_extra}')
    return model


def make_task(tmp_path: Path, params: dict | None = None, name: str = "task") -> Path:
    task = tmp_path / name
    task.mkdir()
    (task / "params.json").write_text(json.dumps(params or {}))
    return task


def runner_argv(model: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "everest_runtime", "run-task", "--model", str(model),
            "--no-preemption-watch", *args]  # fmt: skip


def run_task(task: Path, model: Path, *args: str, env=None, timeout: float = 120):
    """Run to the end; stdout/stderr as bytes (the model may print any)."""
    return subprocess.run(
        runner_argv(model, *args),
        cwd=task,
        env=env or clean_env(),
        capture_output=True,
        timeout=timeout,
    )


def start_task(task: Path, model: Path, *args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        runner_argv(model, *args),
        cwd=task,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def status_text(task: Path) -> str:
    return (task / "status.txt").read_text().strip()


def every_byte(root: Path, skip: Path | None = None) -> bytes:
    """Every file under ``root`` (links not followed, nothing under ``skip``),
    zip members included."""
    data = b""
    for path in sorted(root.rglob("*")):
        if skip is not None and skip in path.parents:
            continue
        if path.is_symlink() or not path.is_file():
            continue
        raw = path.read_bytes()
        data += raw
        if raw[:2] == b"PK":
            with contextlib.suppress(zipfile.BadZipFile):
                data += b"".join(zip_members(path).values())
    return data
