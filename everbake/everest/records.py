"""Build records as the Everest side reads them: the one ``--image`` names, and the
newest of a spec for a provider (by its ``created`` time, then the file's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everbake.build.record import read_record, record_path
from everbake.errors import EverbakeError
from everbake.spec import ImageSpec, load_spec, repo_root_of


def find_build(
    image: str, provider: str, images_dir: Path | None
) -> tuple[ImageSpec, dict[str, Any]]:
    """(spec, record) for ``--image``: an image name with a build record, or a spec name
    (its newest build record for ``provider``)."""
    try:
        spec = load_spec(image, images_dir)
    except EverbakeError as spec_error:
        spec = None
        problem = spec_error
    if spec is not None:
        newest = newest_record(spec, provider)
        if newest is None:
            raise EverbakeError(
                f"--image {image}: no {provider} build record of spec {spec.name} in "
                f"{record_path(spec.repo_root, provider, '').parent}; build it first: "
                f"invoke build-image --provider {provider} --image {spec.name}"
            )
        return spec, newest
    # An image name: its record names the spec it came from.
    named = read_record(record_path(repo_root_of(images_dir), provider, image))
    if named is None:
        raise EverbakeError(f"--image {image}: not a spec name nor a built image ({problem})")
    return load_spec(str(named.get("spec", "")), images_dir), named


def newest_record(spec: ImageSpec, provider: str) -> dict[str, Any] | None:
    """The newest build record of ``spec`` for ``provider`` (by its ``created`` time)."""
    folder = record_path(spec.repo_root, provider, "x").parent
    found = []
    for path in folder.glob("*.json"):
        if path.name.endswith(".manifest.json"):
            continue
        data = read_record(path)
        if data and data.get("spec") == spec.name and data.get("provider", provider) == provider:
            found.append((str(data.get("created", "")), path.stat().st_mtime, data))
    if not found:
        return None
    return max(found, key=lambda item: (item[0], item[1]))[2]
