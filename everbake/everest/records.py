"""Build records as the Everest side reads them: the one ``--image`` names, and the
newest of a spec for a provider (by its ``created`` time, then the file's), both
from the settings' dist dir, where build-image writes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from everbake.bake.record import read_record, record_path
from everbake.errors import EverbakeError
from everbake.settings import Settings
from everbake.spec import ImageSpec


def settings_with(settings: Settings | None, images_dir: Path | None) -> Settings:
    """``settings`` (default: the defaults) with ``images_dir`` when one is given."""
    settings = settings or Settings()
    if images_dir is not None:
        settings = dataclasses.replace(settings, images_dir=images_dir)
    return settings


def find_build(image: str, provider: str, settings: Settings) -> tuple[ImageSpec, dict[str, Any]]:
    """(spec, record) for ``--image``: an image name with a build record, or a spec name
    (its newest build record for ``provider``)."""
    try:
        spec = settings.load_spec(image)
    except EverbakeError as spec_error:
        spec = None
        problem = spec_error
    if spec is not None:
        newest = newest_record(spec, provider, settings)
        if newest is None:
            raise EverbakeError(
                f"--image {image}: no {provider} build record of spec {spec.name} in "
                f"{_folder(settings.dist_root(spec), provider)}; build it first: "
                f"invoke build-image --provider {provider} --image {spec.name}"
            )
        return spec, newest
    # An image name: its record names the spec it came from.
    named = read_record(record_path(settings.dist_root_of_repo(), provider, image))
    if named is None:
        raise EverbakeError(f"--image {image}: not a spec name nor a built image ({problem})")
    return settings.load_spec(str(named.get("spec", ""))), named


def newest_record(spec: ImageSpec, provider: str, settings: Settings) -> dict[str, Any] | None:
    """The newest build record of ``spec`` for ``provider`` (by its ``created`` time)."""
    found = []
    for path in _folder(settings.dist_root(spec), provider).glob("*.json"):
        if path.name.endswith(".manifest.json"):
            continue
        data = read_record(path)
        if data and data.get("spec") == spec.name and data.get("provider", provider) == provider:
            found.append((str(data.get("created", "")), path.stat().st_mtime, data))
    if not found:
        return None
    return max(found, key=lambda item: (item[0], item[1]))[2]


def _folder(dist: Path, provider: str) -> Path:
    return record_path(dist, provider, "x").parent
