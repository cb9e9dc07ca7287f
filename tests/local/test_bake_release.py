"""What a bake fetched for its look-up goes, whatever stops it: a build that fails
while preparing (here: an embed secret whose value is not set) leaves no agent
archive in build/."""

from __future__ import annotations

from pathlib import Path

import pytest

from everbake.bake import build_spec
from everbake.errors import CredentialsError
from everbake.providers import get
from everbake.settings import Settings
from everbake.spec import REPO_ROOT, load_spec
from tests.spec_text import without_agent_table

AGENT_SRC = REPO_ROOT / "tests" / "fixtures" / "agent-src"


def test_a_failed_preparation_leaves_no_fetched_agent(tmp_path: Path) -> None:
    text = without_agent_table((REPO_ROOT / "images" / "optimization.toml").read_text())
    text = text.replace('name = "optimization"', 'name = "releasetest"', 1)
    text += (
        f'\n[agent]\nsource = "{AGENT_SRC}"\nrequired = true\npython_requires = ">=3.6"\n'
        '\n[secrets.licence]\nmode = "embed"\nenv = "EVERBAKE_TEST_UNSET_LICENCE"\n'
    )
    spec_file = tmp_path / "releasetest.toml"
    spec_file.write_text(text)
    spec = load_spec(spec_file, REPO_ROOT / "images")
    build = tmp_path / "build"
    settings = Settings(build_dir=build, dist_dir=tmp_path / "dist", local_cache=tmp_path / "c")

    with pytest.raises(CredentialsError, match="EVERBAKE_TEST_UNSET_LICENCE"):
        build_spec(spec, get("local"), settings=settings, environ={"PATH": "/usr/bin:/bin"})
    folder = build / "local"
    # The look-up fetched the agent (its content names the image) before the secret check.
    assert folder.is_dir()
    assert sorted(p.name for p in folder.iterdir() if ".agent-" in p.name) == []
