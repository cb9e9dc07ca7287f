"""Shared by the Everest tests: a fake server, a token for it, an isolated config dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.everest import EverestFake


@pytest.fixture
def everest() -> Iterator[EverestFake]:
    with EverestFake() as fake:
        yield fake


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_CONFIG_HOME in the test's own directory; no EVEREST_* from the caller."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in ("EVEREST_TOKEN", "EVEREST_URL"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def token(everest: EverestFake, monkeypatch: pytest.MonkeyPatch, config_home: Path) -> str:
    """A valid token for the fake, in EVEREST_TOKEN."""
    value = everest.issue_token()
    monkeypatch.setenv("EVEREST_TOKEN", value)
    return value


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())
