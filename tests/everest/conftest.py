"""Shared by the Everest tests: a fake server, a token for it, an isolated config dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from everbake.fingerprint import fingerprints
from everbake.records import record_path, write_record
from everbake.spec import load_spec
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


@pytest.fixture
def images_dir(repo_copy: Path) -> Path:
    return repo_copy / "images"


@pytest.fixture
def built(repo_copy: Path) -> Callable[..., dict[str, Any]]:
    """Write a cloud build record as everbake.cloudbuild writes it (no cloud involved)."""

    def make(
        provider: str = "gcp",
        spec_name: str = "optimization",
        *,
        fingerprint: str | None = None,
        created: str = "2026-12-01T10:00:00+00:00",
    ) -> dict[str, Any]:
        spec = load_spec(spec_name, repo_copy / "images")
        fps = fingerprints(spec)
        fp = fingerprint or fps.image
        name = f"{spec.family}-{fp[:12]}"
        place = {"gcp": ("project", "test-project"), "yandex": ("folder_id", "b1gtestfolder")}
        key, value = place[provider]
        record = {
            "image": name,
            "image_name": name,
            "image_id": "4567890123456789012" if provider == "gcp" else "fd8" + fp[:17],
            "family": spec.family,
            "provider": provider,
            key: value,
            "spec": spec.name,
            "spec_canonical": spec.to_canonical(),
            "fingerprints": {"base": fps.base, "image": fp},
            "created": created,
        }
        write_record(record_path(repo_copy / "dist", provider, name), record)
        return record

    return make
