"""What would be built: one row per image, provider and layer (pure, no network).

The cloud part adds columns (exists?, action) to these rows; `columns` lists
what the table shows, in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from everbake import naming
from everbake.fingerprint import fingerprints
from everbake.providers import get
from everbake.spec import ImageSpec

COLUMNS = ["image", "provider", "layer", "fingerprint", "image_name"]
LOCAL_LAYERS = ("base", "image")  # the local base layer is a cached rootfs tarball


def plan_rows(specs: Iterable[ImageSpec], providers: Iterable[str]) -> list[dict[str, Any]]:
    rows = []
    provider_names = list(providers)
    for spec in specs:
        fps = fingerprints(spec)
        for name in provider_names:
            provider = get(name)
            layers = LOCAL_LAYERS if provider.name == "local" else provider.layers
            for layer in layers:
                rows.append(
                    {
                        "image": spec.name,
                        "provider": provider.name,
                        "layer": layer,
                        "fingerprint": fps.of(layer),
                        "image_name": naming.image_name(spec, fps, layer),
                        "family": naming.family(spec, layer),
                    }
                )
    return rows


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    columns = columns or COLUMNS
    shown = [{c: _cell(c, row.get(c, "")) for c in columns} for row in rows]
    widths = {c: max([len(c), *(len(r[c]) for r in shown)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in shown]
    return "\n".join(lines)


def format_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)


def _cell(column: str, value: Any) -> str:
    if column == "fingerprint":
        return str(value)[:16]
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
