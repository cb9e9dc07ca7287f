"""What a cached model tree held when it was filled: every file's path, size and
sha256, in <tree>/.everest-manifest.json. Checked cheaply (presence, type and
size) on every use and fully (contents) on request, so a damaged or edited
entry is fetched again and never run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MANIFEST_FILE = ".everest-manifest.json"
_OURS = (MANIFEST_FILE, ".everest-source.json")  # written by the runtime, not the model


def sha256_file(path: str) -> str:
    import hashlib  # only to write or fully verify: the quick check on every use skips it

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(tree: Path) -> dict[str, tuple[str, str]]:
    """rel path -> (kind, link target or ""); kind is file, link or dir."""
    found = {}
    for top, dirs, files in os.walk(str(tree)):
        for name in dirs + files:
            full = os.path.join(top, name)
            rel = os.path.relpath(full, str(tree))
            if rel in _OURS:
                continue
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            elif name in dirs:
                found[rel] = ("dir", "")
            else:
                found[rel] = ("file", "")
    return found


def write(tree: Path, known: dict[str, tuple[int, str]] | None = None) -> None:
    """Record ``tree``. ``known`` maps paths to (size, sha256) already computed
    (by unarchive, while writing them); a file is read only when it is not there
    or its size on disk differs."""
    known = known or {}
    entries = []
    for rel, (kind, target) in sorted(_walk(tree).items()):
        entry: dict = {"path": rel, "kind": kind}
        if kind == "file":
            full = os.path.join(str(tree), rel)
            size = os.path.getsize(full)
            hashed = known.get(rel)
            sha256 = hashed[1] if hashed and hashed[0] == size else sha256_file(full)
            entry.update(size=size, sha256=sha256)
        elif kind == "link":
            entry["target"] = target
        entries.append(entry)
    (tree / MANIFEST_FILE).write_text(json.dumps({"entries": entries}), encoding="utf-8")


def problem(tree: Path, full: bool = False) -> str | None:
    """Why ``tree`` is not what was cached (first difference), or None when intact.
    Cheap: presence, kind and size of every entry; ``full``: also every file's
    sha256. Files added later (a model's __pycache__) are not a difference."""
    try:
        entries = json.loads((tree / MANIFEST_FILE).read_text(encoding="utf-8"))["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} missing or unreadable"
    for entry in entries:
        rel = entry["path"]
        full_path = os.path.join(str(tree), rel)
        try:
            st = os.lstat(full_path)
        except OSError:
            return f"{rel} missing"
        if not _same(entry, full_path, st, full):
            return f"{rel} changed"
    return None


def _same(entry: dict, path: str, st: os.stat_result, full: bool) -> bool:
    if entry["kind"] == "link":
        return stat.S_ISLNK(st.st_mode) and os.readlink(path) == entry["target"]
    if entry["kind"] == "dir":
        return stat.S_ISDIR(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
        return False
    return not full or sha256_file(path) == entry["sha256"]
