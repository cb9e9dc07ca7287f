"""Build records: dist/builds/<provider>/<image>.json, written last and atomically.

A record exists only for an image that was built completely; the up-to-date
check trusts nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from everbake.errors import BuildError
from everbake.files import write_json


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


def local_up_to_date(record: dict[str, Any] | None, image_fingerprint: str) -> Path | None:
    """The image tarball when ``record`` shows a finished local build of this fingerprint."""
    if not record or record.get("fingerprints", {}).get("image") != image_fingerprint:
        return None
    tarball = Path(record.get("artifact", {}).get("path", ""))
    size = record.get("artifact", {}).get("size_bytes")
    if tarball.is_file() and tarball.stat().st_size == size:
        return tarball
    return None
