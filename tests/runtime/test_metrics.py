"""The model's out/metrics.json becomes the task's metrics.json (a real runner process):
copied when it is a flat object of numbers and short strings, refused with one log line
otherwise, never through a link, scrubbed of secrets, and never failing the task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.runtime.cli_env import clean_env
from tests.runtime.test_runner import run_task, task_dir

SECRET = "metrics-secret-4c1f9e"


def model_writing(tmp_path: Path, script: str) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "run-task.sh").write_text(
        "#!/bin/bash\nset -euo pipefail\nmkdir -p out\n" + script + "\necho '##status ok'\n"
    )
    return model


def test_a_flat_object_is_copied_and_scrubbed(tmp_path):
    model = model_writing(
        tmp_path,
        'printf \'{"objective": 153.675, "gap": 0, "solver": "highs", "optimal": true, '
        '"note": "%s"}\' "$MY_TOKEN" > out/metrics.json',
    )
    task = task_dir(tmp_path)
    result = run_task(task, model=model, env=clean_env(MY_TOKEN=SECRET))
    assert result.returncode == 0, result.stderr
    got = json.loads((task / "metrics.json").read_text())
    assert got == {
        "objective": 153.675,
        "gap": 0,
        "solver": "highs",
        "optimal": True,
        "note": "<redacted>",
    }
    assert (task / "status.txt").read_text().strip() == "ok"  # the model's last word


def test_no_metrics_file_means_no_output(tmp_path):
    task = task_dir(tmp_path)
    result = run_task(task, model=model_writing(tmp_path, "true"))
    assert result.returncode == 0, result.stderr
    assert not (task / "metrics.json").exists()
    assert "metrics.json" not in result.stderr


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"a": {"nested": 1}}', "a is dict"),
        ("[1, 2]", "one JSON object, not list"),
        ('{"a": NaN}', "not JSON"),
        ('{"a": 1', "not JSON"),
        ('{"a": "' + "x" * 500 + '"}', "a is a string over 200 characters"),
        ("x" * 70000, "larger than 64 KiB"),
    ],
)
def test_a_bad_metrics_file_is_one_warning_and_the_task_still_succeeds(tmp_path, content, reason):
    task = task_dir(tmp_path)
    (tmp_path / "metrics.src").write_text(content)
    model = model_writing(tmp_path, f"cp {tmp_path / 'metrics.src'} out/metrics.json")
    result = run_task(task, model=model)
    assert result.returncode == 0, result.stderr
    assert not (task / "metrics.json").exists()
    warnings = [line for line in result.stderr.splitlines() if "metrics.json not written" in line]
    assert len(warnings) == 1 and reason in warnings[0], result.stderr
    assert (task / "status.txt").read_text().strip() == "ok"


def test_a_link_is_never_followed(tmp_path):
    private = tmp_path / "private.json"
    private.write_text('{"stolen": 1}')
    os.chmod(private, 0o600)
    task = task_dir(tmp_path)
    result = run_task(task, model=model_writing(tmp_path, f"ln -s {private} out/metrics.json"))
    assert result.returncode == 0, result.stderr
    assert not (task / "metrics.json").exists()
    assert "not a regular file" in result.stderr
