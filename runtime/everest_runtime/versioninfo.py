"""The model's version as people read it, from GitLab commit metadata or a local
source. Stored next to the cached tree as .everest-source.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INFO_FILE = ".everest-source.json"


def from_commit(ref: str, commit: dict[str, Any], source: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "sha": str(commit.get("id", "")),
        "short_sha": str(commit.get("short_id") or str(commit.get("id", ""))[:8]),
        "date": str(commit.get("committed_date") or commit.get("created_at") or ""),
        "title": str(commit.get("title", "")).strip(),
        "source": source,
    }


def local(path: Path) -> dict[str, Any]:
    return {
        "ref": "local",
        "sha": "",
        "short_sha": "",
        "date": "",
        "title": "",
        "source": f"local {path}",
    }


def read(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return local(model_dir)


def write(model_dir: Path, info: dict[str, Any]) -> None:
    (model_dir / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")


def short(info: dict[str, Any]) -> str:
    """One line for EVEREST_MODEL_VERSION, e.g. 'v1.2 (3f2c1a9e)'."""
    if info.get("short_sha"):
        ref = info.get("ref", "")
        if ref and ref != info.get("sha"):
            return f"{ref} ({info['short_sha']})"
        return info["short_sha"]
    return info.get("source", "unknown")


def text(info: dict[str, Any]) -> str:
    """version.txt: a few human-readable lines."""
    lines = [f"version: {short(info)}"]
    for key in ("ref", "sha", "date", "title", "source"):
        if info.get(key):
            lines.append(f"{key}: {info[key]}")
    return "\n".join(lines) + "\n"
