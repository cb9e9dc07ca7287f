"""An image's package list and the difference between two images (pure data).

The list is /etc/everest/packages.json, written inside the image by
provisioning/85-packages.sh from what is installed there: ``debian`` (package ->
version), ``python`` (the models' venv: normalised distribution name -> version)
and, with the agent, ``agent_python``. The build copies it into the build record
(``packages``); each task copies it into provenance.json.

`diff` compares two image descriptions (`describe`: what a build record, or a
spec not built yet, says about an image) section by section, always in the same
order and with sorted keys, so its JSON is stable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IN_IMAGE = "/etc/everest/packages.json"
FILE = "packages.json"  # beside the build's work dir, read into the build record
SECTIONS = ("debian", "python", "agent_python")
MAPPINGS = ("solvers", "python_packages", "scripts")  # name -> version or sha256
VALUES = ("runtime_version", "runtime", "agent", "base_os")


def load(path: Path) -> dict[str, Any] | None:
    """The package list at ``path``, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: dict(data[k]) for k in SECTIONS if isinstance(data.get(k), dict)}


def describe(record: Mapping[str, Any]) -> dict[str, Any]:
    """What two images are compared by, from a build record (or a would-be record)."""
    inputs = record.get("inputs") or {}
    return {
        "image": record.get("image"),
        "provider": record.get("provider"),
        "spec": record.get("spec"),
        "fingerprints": dict(record.get("fingerprints") or {}),
        "solvers": dict(inputs.get("solvers") or {}),
        "python_packages": dict(inputs.get("python_packages") or {}),
        "scripts": dict(inputs.get("scripts") or {}),
        "runtime": inputs.get("runtime"),
        "runtime_version": inputs.get("runtime_version"),
        "agent": record.get("agent_content"),
        "base_os": inputs.get("base_os"),
        "packages": record.get("packages"),
    }


def _mapping_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "added": {k: b[k] for k in sorted(set(b) - set(a))},
        "removed": {k: a[k] for k in sorted(set(a) - set(b))},
        "changed": {k: [a[k], b[k]] for k in sorted(set(a) & set(b)) if a[k] != b[k]},
    }


def _empty(section: Mapping[str, Any]) -> bool:
    return not any(section.values())


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """What differs from image ``a`` to image ``b`` (both from `describe`)."""
    out: dict[str, Any] = {
        "a": {k: a.get(k) for k in ("image", "provider", "spec", "fingerprints")},
        "b": {k: b.get(k) for k in ("image", "provider", "spec", "fingerprints")},
        "same_image": bool(a.get("fingerprints", {}).get("image"))
        and a.get("fingerprints", {}).get("image") == b.get("fingerprints", {}).get("image"),
    }
    # A section one side does not know (None: e.g. a job's image known only from its
    # provenance) is left out, never shown as everything added or removed.
    for key in MAPPINGS:
        known = a.get(key) is not None and b.get(key) is not None
        out[key] = _mapping_diff(a[key], b[key]) if known else None
    for key in VALUES:
        same = a.get(key) is None or b.get(key) is None or a.get(key) == b.get(key)
        out[key] = None if same else [a.get(key), b.get(key)]
    packages: dict[str, Any] = {}
    pa, pb = a.get("packages"), b.get("packages")
    if pa is not None and pb is not None:
        for section in SECTIONS:
            packages[section] = _mapping_diff(pa.get(section) or {}, pb.get(section) or {})
    out["packages"] = packages
    out["packages_known"] = {"a": pa is not None, "b": pb is not None}
    return out


def differs(result: Mapping[str, Any]) -> bool:
    """Whether `diff` found anything beyond the names and fingerprints."""
    if any(result[key] and not _empty(result[key]) for key in MAPPINGS):
        return True
    if any(result[key] is not None for key in VALUES):
        return True
    return any(not _empty(section) for section in result["packages"].values())


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in sorted(value.items()))
    return _short(value)


def lines(result: Mapping[str, Any]) -> list[str]:
    """The difference as table rows: what, name, from, to ("highspy 1.8.1 → 1.9.0")."""
    rows: list[tuple[str, str, str, str]] = []
    sections = [(f"{s} package", result["packages"].get(s)) for s in SECTIONS]
    for label, section in [
        ("solver", result["solvers"]),
        ("python (spec)", result["python_packages"]),
        ("script", result["scripts"]),
        *sections,
    ]:
        if not section:
            continue
        for name, (old, new) in section["changed"].items():
            rows.append((label, name, _short(old), _short(new)))
        for name, new in section["added"].items():
            rows.append((label, name, "-", _short(new)))
        for name, old in section["removed"].items():
            rows.append((label, name, _short(old), "-"))
    for key in VALUES:
        if result[key] is not None:
            old, new = result[key]
            rows.append((key.replace("_", " "), "", _value(old), _value(new)))
    if not rows:
        return []
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return [
        f"{what:<{width[0]}}  {name:<{width[1]}}  {old:>{width[2]}} → {new}".rstrip()
        for what, name, old, new in rows
    ]
