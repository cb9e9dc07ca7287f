"""What would be built: one row per image, provider and layer.

`plan_rows` is pure (no network). `add_status` fills in `exists` and `action`
per row: local from the build record and the base cache, clouds by looking the
fingerprint up in the provider's image store. A lookup that cannot be made
(offline, no credentials, no project/folder, an API error) says "unknown" and
why; it never guesses "missing".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from everbake import naming
from everbake.fingerprint import fingerprints
from everbake.providers import get
from everbake.spec import ImageSpec

COLUMNS = ["image", "provider", "layer", "fingerprint", "image_name"]
STATUS_COLUMNS = [*COLUMNS, "exists", "action"]
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


def add_status(
    rows: list[dict[str, Any]],
    specs: Iterable[ImageSpec],
    *,
    offline: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Set ``exists`` (True, False or None: unknown) and ``action`` on every row."""
    env = os.environ if env is None else env
    by_name = {spec.name: spec for spec in specs}
    stores: dict[tuple[str, str], Any] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["image"], row["provider"]), []).append(row)
    for (image, provider), group in groups.items():
        spec = by_name[image]
        # The rows already carry each layer's fingerprint, name and family.
        layers = {row["layer"]: row for row in group}
        if provider == "local":
            found = _local_exists(spec, layers)
        elif offline:
            found = dict.fromkeys(("base", "image"), "--offline")
        else:
            found = _cloud_exists(spec, provider, env, stores, layers)
        for row in group:
            state = found[row["layer"]]
            row["exists"] = state if isinstance(state, bool) else None
            row["action"] = _action(row["layer"], found, provider)
    return rows


def _local_exists(
    spec: ImageSpec, layers: Mapping[str, Mapping[str, Any]]
) -> dict[str, bool | str]:
    from everbake.build.record import local_up_to_date, read_record, record_path
    from everbake.localbuild.plan import base_cache_name, default_cache_dir

    image = layers["image"]
    record = read_record(record_path(spec.repo_root, "local", image["image_name"]))
    cache = default_cache_dir(spec.repo_root) / base_cache_name(layers["base"]["fingerprint"])
    return {
        "base": cache.is_file(),
        "image": local_up_to_date(record, image["fingerprint"]) is not None,
    }


def _cloud_exists(
    spec: ImageSpec,
    provider: str,
    env: Mapping[str, str],
    stores: dict[tuple[str, str], Any],
    layers: Mapping[str, Mapping[str, Any]],
) -> dict[str, bool | str]:
    """Per layer: found or not, or the reason it is unknown."""
    from everbake.errors import EverbakeError
    from everbake.location import location_of
    from everbake.stores.factory import credentials_hint, open_store

    hint = credentials_hint(provider, env)
    if not hint.ok:
        return dict.fromkeys(("base", "image"), f"no credentials: {hint.fix}")
    out: dict[str, bool | str] = {}
    try:
        location = location_of(spec, provider, env)
        key = (provider, location)
        if key not in stores:
            stores[key] = open_store(provider, location, env)
        for layer in ("base", "image"):
            row = layers[layer]
            out[layer] = (
                stores[key].find_by_fingerprint(row["fingerprint"], row["family"]) is not None
            )
    except EverbakeError as exc:
        reason = str(exc).splitlines()[0]
        return {layer: out.get(layer, f"lookup failed: {reason}") for layer in ("base", "image")}
    return out


def _action(layer: str, found: Mapping[str, bool | str], provider: str) -> str:
    state = found[layer]
    if not isinstance(state, bool):
        return f"unknown ({state})"
    if layer == "base":
        if found["image"] is True:
            return "none (image up to date)"  # build-image stops at the image lookup
        if state:
            return "reuse (cached)" if provider == "local" else "reuse"
        return "build"
    if state:
        return "up to date"
    base = found["base"]
    return "build (base missing)" if base is False else "build"


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
    if column == "exists" and value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
