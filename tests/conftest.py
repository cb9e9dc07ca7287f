"""Shared fixtures: the repository, a throwaway copy of it, specs written on the fly."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What a spec's fingerprint and rendering read from the repository.
REPO_PARTS = ("images", "templates", "provisioning", "runtime")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the parts of the repository a spec depends on (safe to edit)."""
    root = tmp_path / "checkout"
    for part in REPO_PARTS:
        shutil.copytree(REPO / part, root / part, ignore=_IGNORE)
    return root


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write an image spec (dedented TOML) into a folder of its own; images/defaults.toml
    still applies because the folder has none."""

    def write(text: str, name: str = "case") -> Path:
        folder = tmp_path / "specs"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


MINIMAL = """\
name = "case"
family = "everbake-case"

[[solvers]]
name = "highs"
install = "pip"
package = "highspy"
version = "1.8.1"
"""


@pytest.fixture
def minimal_spec() -> str:
    return MINIMAL
