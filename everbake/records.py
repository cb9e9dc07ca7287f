"""Build records: dist/builds/<provider>/<image>.json, written last and atomically.

A record exists only for an image that was built completely; the up-to-date
check trusts nothing else. Publishing reads only records: the one ``--image``
names, or the newest of a spec for a provider (by its ``created`` time, then
the file's), from the settings' dist dir, where build-image writes them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from everbake.errors import BuildError, EverbakeError
from everbake.files import write_json
from everbake.settings import Settings
from everbake.spec import ImageSpec


def record_path(dist: Path, provider: str, image: str) -> Path:
    """<dist>/builds/<provider>/<image>.json."""
    return dist / "builds" / provider / f"{image}.json"


def write_record(path: Path, record: dict[str, Any]) -> None:
    write_json(path, record)


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise BuildError(
            f"build record {path} is unreadable ({exc}); delete it and rebuild"
        ) from None
    return data if isinstance(data, dict) else None


def local_up_to_date(
    record: dict[str, Any] | None, image_fingerprint: str, expected: Path | None = None
) -> Path | None:
    """The image tarball when ``record`` shows a finished local build of this fingerprint
    (at ``expected`` when given: the spec's compression names the tarball, and a
    change of compression re-exports the same image)."""
    if not record or record.get("fingerprints", {}).get("image") != image_fingerprint:
        return None
    tarball = Path(record.get("artifact", {}).get("path", ""))
    if expected is not None and tarball != expected:
        return None
    size = record.get("artifact", {}).get("size_bytes")
    if tarball.is_file() and tarball.stat().st_size == size:
        return tarball
    return None


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
