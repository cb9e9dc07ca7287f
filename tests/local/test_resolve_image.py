"""run-local's --image: a tarball path, a built image name, or a spec's current build,
with a hint naming the newest older build of that spec's family (only that family)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from everbake.errors import EverbakeError
from everbake.runlocal import resolve_image
from everbake.settings import Settings
from everbake.spec import REPO_ROOT


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "images", root / "images")
    (root / "dist" / "local").mkdir(parents=True)
    return root


def settings(repo: Path) -> Settings:
    return Settings(images_dir=repo / "images", dist_dir=repo / "dist")


def tarball(repo: Path, name: str, age: float) -> Path:
    path = repo / "dist" / "local" / f"{name}.tar.zst"
    path.write_bytes(b"image")
    os.utime(path, (1_700_000_000 - age, 1_700_000_000 - age))
    return path


def test_path_and_image_name(repo: Path) -> None:
    path = tarball(repo, "everbake-optimization-aaaaaaaaaaaa", 0)
    assert resolve_image(path, settings(repo)) == path.resolve()
    assert resolve_image("everbake-optimization-aaaaaaaaaaaa", settings(repo)) == path


def test_missing_current_build_hints_at_the_newest_older_one_of_its_family(repo: Path) -> None:
    tarball(repo, "everbake-optimization-aaaaaaaaaaaa", 20)
    tarball(repo, "everbake-optimization-bbbbbbbbbbbb", 10)
    tarball(repo, "everbake-optimization-extra-cccccccccccc", 0)  # another family, newest
    with pytest.raises(EverbakeError) as failure:
        resolve_image("optimization", settings(repo))
    message = str(failure.value)
    assert "build it: invoke build-image --image optimization" in message
    assert message.endswith("--image everbake-optimization-bbbbbbbbbbbb")


def test_no_older_build_no_hint_and_unknown_names(repo: Path) -> None:
    with pytest.raises(EverbakeError) as failure:
        resolve_image("optimization", settings(repo))
    assert "older build" not in str(failure.value)
    with pytest.raises(EverbakeError, match="not an image tarball, a built image name"):
        resolve_image("nope", settings(repo))
