"""End to end, for real: the bullseye example (images/optimization-py39.toml) bakes
with an agent that declares python_requires = ">=3.6,<3.10", the verify step
compiles and imports that agent with Python 3.9, and the image solves the
example job with run-local."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from everbake.agent_fetch import pack_dir
from everbake.bake import build_image
from everbake.files import sha256_file
from everbake.runlocal import run_local
from everbake.spec import REPO_ROOT

pytestmark = pytest.mark.slow

AGENT_TOKEN = "e2e-py39-agent-token-4b1e7c93d0"


def _agent_for_py39(tmp_path: Path) -> tuple[Path, str]:
    """The fixture agent, declaring Python 3.6-3.9 in its setup.cfg (and nothing else)."""
    src = tmp_path / "agent-py39"
    shutil.copytree(
        REPO_ROOT / "tests" / "fixtures" / "agent-src",
        src,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (src / "pyproject.toml").unlink()
    (src / "setup.cfg").write_text("[options]\npython_requires = >=3.6,<3.10\n")
    archive = tmp_path / "agent-py39.tar.gz"
    pack_dir(src, archive)  # one top folder (agent-py39/), like a GitLab archive
    return archive, sha256_file(archive)


def test_bullseye_example_bakes_an_agent_for_python_39_and_solves_the_job(
    base_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walk_tarball
) -> None:
    archive, sha = _agent_for_py39(tmp_path)
    spec_text = (REPO_ROOT / "images" / "optimization-py39.toml").read_text()
    spec_text += f"""
[agent]
source = "{archive}"
sha256 = "{sha}"
required = true

[secrets.agent_token]
mode = "env"
env = "EB_E2E_PY39_TOKEN"
"""
    spec_path = tmp_path / "optimization-py39.toml"
    spec_path.write_text(spec_text)
    monkeypatch.setenv("EB_E2E_PY39_TOKEN", AGENT_TOKEN)
    record = build_image(str(spec_path), images_dir=REPO_ROOT / "images", force=True).record
    tarball = Path(record["artifact"]["path"])
    names = {member.name.removeprefix("./") for member, _ in walk_tarball(tarball)}
    # The agent's venv runs the base's Python 3.9, and the image has no bytecode from verify.
    assert any(n.startswith("opt/everest/agent/venv/lib/python3.9/") for n in names)
    assert not any(n.startswith("opt/everest/agent/everest_agent/__pycache__") for n in names)
    build_log = (REPO_ROOT / "build" / "local" / "optimization-py39" / "build.log").read_text()
    assert "agent: everest_agent compiles and imports with Python 3.9" in build_log

    outcome = run_local(record["image"], REPO_ROOT / "examples/transport/job", runs_dir=tmp_path)
    assert outcome.exit_code == 0 and not outcome.cancelled
    expected = json.loads((REPO_ROOT / "examples/transport/job/expected.json").read_text())
    with zipfile.ZipFile(outcome.run_dir / "results.zip") as results:
        summary_name = next(n for n in results.namelist() if n.endswith("summary.json"))
        objective = json.loads(results.read(summary_name))["objective"]
    assert abs(objective - expected["objective"]) <= expected["tolerance"] * max(1, abs(objective))
