"""provenance.json from a real everest-run-task: the image (from an image.json and
packages.json laid out as the build writes them), installed solver versions, the
model's commit and source without its token, input digests, start, end, host kind;
and version.txt's image line. Also for a model that fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.runtime.cli_env import clean_env
from tests.runtime.tasks import make_model, make_task, run_task

TOKEN = "glpat-provenance-7c1e9a"
IMAGE = {
    "image": "optimization-0123456789abcdef",
    "spec": "optimization",
    "family": "optimization",
    "provider": "local",
    "fingerprints": {"base": "b" * 64, "image": "0123456789abcdef" + "a" * 48},
    "agent_content": "none",
    "solvers": {
        "highs": {"install": "pip", "package": "highspy", "version": "1.8.1"},
        "cbc": {"install": "apt", "package": "coinor-cbc", "version": "2.10.8+ds1-1"},
    },
}
PACKAGES = {
    "format": 1,
    "debian": {"coinor-cbc": "2.10.8+ds1-1+b1", "libc6": "2.36-9"},
    "python": {"highspy": "1.8.1", "pulp": "2.9.0"},
}


def image_dir(tmp_path: Path) -> Path:
    where = tmp_path / "etc-everest"
    where.mkdir()
    (where / "image.json").write_text(json.dumps(IMAGE))
    (where / "packages.json").write_text(json.dumps(PACKAGES))
    return where


def commit_model(tmp_path: Path, script: str) -> Path:
    model = make_model(tmp_path, script)
    source = {
        "ref": "v1.2",
        "sha": "3f2c1a9e" + "0" * 32,
        "short_sha": "3f2c1a9e",
        "date": "2026-11-30T10:00:00Z",
        "title": "faster solve",
        "source": f"gitlab https://oauth2:{TOKEN}@gitlab.example/ops/model",
    }
    (model / ".everest-source.json").write_text(json.dumps(source))
    return model


def test_a_task_says_what_produced_it(tmp_path: Path) -> None:
    model = commit_model(tmp_path, "open('out.txt', 'w').write('ok')\n")
    task = make_task(tmp_path, {"n": 3})
    (task / "data.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    env = clean_env(
        EVEREST_IMAGE_DIR=str(image_dir(tmp_path)),
        EVEREST_HOST_KIND="local",
        EVEREST_GITLAB_URL=f"https://oauth2:{TOKEN}@gitlab.example",
    )
    result = run_task(task, model, env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads((task / "provenance.json").read_text())
    assert doc["image"]["name"] == IMAGE["image"]
    assert doc["image"]["fingerprints"] == IMAGE["fingerprints"]
    assert doc["image"]["provider"] == "local" and doc["agent"]["content"] == "none"
    # Versions as installed, not as the spec says (cbc's Debian revision differs).
    assert doc["solvers"]["cbc"]["version"] == "2.10.8+ds1-1+b1"
    assert doc["solvers"]["highs"]["version"] == "1.8.1"
    assert doc["packages"]["python"]["pulp"] == "2.9.0"
    assert doc["model"]["sha"].startswith("3f2c1a9e") and doc["model"]["ref"] == "v1.2"
    assert doc["model"]["source"] == "gitlab https://gitlab.example/ops/model"
    params_sha = hashlib.sha256((task / "params.json").read_bytes()).hexdigest()
    assert doc["inputs"]["parameters"]["sha256"] == params_sha
    data_sha = hashlib.sha256((task / "data.zip").read_bytes()).hexdigest()
    assert doc["inputs"]["data"] == {"file": "data.zip", "sha256": data_sha}
    assert doc["task"]["host"] == "local" and doc["task"]["exit_code"] == 0
    assert doc["task"]["started"] <= doc["task"]["ended"]
    assert doc["runtime"]["version"]
    version = (task / "version.txt").read_text()
    assert "image: optimization-0123456789abcdef (fingerprint 0123456789ab)" in version
    for name in ("provenance.json", "version.txt"):
        assert TOKEN not in (task / name).read_text()


def test_a_failed_task_has_one_and_no_image_means_no_image_line(tmp_path: Path) -> None:
    model = make_model(tmp_path, "import sys; sys.exit(3)\n")
    task = make_task(tmp_path)
    env = clean_env(EVEREST_IMAGE_DIR=str(tmp_path / "nowhere"))
    result = run_task(task, model, env=env)
    assert result.returncode == 3
    doc = json.loads((task / "provenance.json").read_text())
    assert doc["task"]["exit_code"] == 3 and doc["task"]["ended"]
    assert doc["image"]["name"] is None and doc["inputs"]["data"]["sha256"] is None
    assert "image:" not in (task / "version.txt").read_text()
