"""One home for diffs: the field-by-field diff export-app --update and
publish-resource print, and the JSON merge patch (RFC 7396) publish-resource sends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def merge_patch(current: Any, wanted: Any) -> Any:
    """The RFC 7396 patch turning ``current`` into ``wanted`` (only what differs)."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return wanted
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        if key not in current:
            patch[key] = value
        elif current[key] != value:
            patch[key] = merge_patch(current[key], value)
    return patch


def diff_lines(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> list[str]:
    """'+ field: value', '- field: value', '~ field: old -> new', by dotted field."""
    old, new = flat(current or {}), flat(wanted)
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            lines.append(f"+ {key}: {new[key]}")
        elif key not in new:
            lines.append(f"- {key}: {old[key]}")
        elif old[key] != new[key]:
            lines.append(f"~ {key}: {old[key]} -> {new[key]}")
    return lines


def flat(data: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(data, Mapping) and (data or not prefix):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(data, sort_keys=True)}
