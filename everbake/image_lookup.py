"""An image named the ways people name one, as its build record: a build record's
path, an image name, a fingerprint (12 or more hex digits, of either layer's
image fingerprint), on any provider, from the build records in the dist dir; or
a spec name, for the image that spec makes now (not built yet: no packages)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError
from everbake.image_inputs import would_be_record
from everbake.records import read_record
from everbake.settings import Settings

_HEX = re.compile(r"[0-9a-f]{12,64}")


def all_records(dist: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((dist / "builds").glob("*/*.json")):
        if path.name.endswith(".manifest.json"):
            continue
        record = read_record(path)
        if record and record.get("image"):
            found.append((path, record))
    return found


def find_image(what: str, settings: Settings, provider: str | None = None) -> dict[str, Any]:
    """The build record ``what`` names (see the module's doc); one clear error otherwise."""
    path = Path(what)
    if what.endswith(".json") and path.is_file():
        record = read_record(path)
        if not record or not record.get("image"):
            raise EverbakeError(f"{what}: not a build record (no image in it)")
        return record
    dist = settings.dist_root_of_repo()
    matches = [
        (p, r)
        for p, r in all_records(dist)
        if (provider is None or r.get("provider", p.parent.name) == provider)
        and (
            r.get("image") == what
            or (
                _HEX.fullmatch(what)
                and str(r.get("fingerprints", {}).get("image", "")).startswith(what)
            )
        )
    ]
    if len(matches) == 1:
        return matches[0][1]
    if len(matches) > 1:
        where = ", ".join(str(p.parent.name) for p, _ in matches)
        raise EverbakeError(f"{what}: built on several providers ({where}); add --provider")
    try:
        spec = settings.load_spec(what)
    except EverbakeError:
        spec = None
    if spec is not None:
        return would_be_record(spec, provider or "")
    raise EverbakeError(
        f"{what}: no build record in {dist / 'builds'} has this image name or fingerprint, "
        "and it is no spec name; give a name from `ls dist/builds/*/`, a fingerprint, "
        "a record's path or a spec"
    )
