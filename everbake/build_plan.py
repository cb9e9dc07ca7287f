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
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from everbake import image_packages, naming
from everbake.agent_fetch import resolve_agent
from everbake.fingerprint import fingerprints
from everbake.image_inputs import would_be_record
from everbake.providers import Provider
from everbake.records import newest_record
from everbake.settings import Settings
from everbake.spec import ImageSpec

COLUMNS = ["image", "provider", "layer", "fingerprint", "image_name"]
STATUS_COLUMNS = [*COLUMNS, "exists", "action"]
LAYERS = ("base", "image")


def plan_rows(specs: Iterable[ImageSpec], providers: Iterable[Provider]) -> list[dict[str, Any]]:
    rows = []
    chosen = list(providers)
    for spec in specs:
        fps = fingerprints(spec)
        for provider in chosen:
            # Both layers everywhere: the local base layer is a cached rootfs tarball.
            for layer in LAYERS:
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
    providers: Sequence[Provider],
    *,
    offline: bool = False,
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Set ``exists`` (True, False or None: unknown) and ``action`` on every row."""
    env = os.environ if env is None else env
    settings = settings or Settings()
    by_name = {spec.name: spec for spec in specs}
    provider_named = {provider.name: provider for provider in providers}
    stores: dict[tuple[str, str], Any] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["image"], row["provider"]), []).append(row)
    agents: dict[str, str] = {}
    for (image, name), group in groups.items():
        provider = provider_named[name]
        spec = by_name[image]
        # The rows already carry each layer's fingerprint, name and family.
        layers = {row["layer"]: row for row in group}
        found = provider.layer_status(spec, layers, settings, env, stores, offline)
        if found.get("image") is False or not spec.agent.sha256:
            # The image fingerprint covers the agent baked: fetch it as a build does
            # (an unpinned one, or a pinned one that may be skipped) and look again.
            if offline:
                if not spec.agent.sha256:
                    found["image"] = "--offline: the agent is not pinned, its content unknown"
            elif "image" in layers and _use_agent(spec, layers["image"], agents):
                found = provider.layer_status(spec, layers, settings, env, stores, offline)
        for row in group:
            state = found[row["layer"]]
            row["exists"] = state if isinstance(state, bool) else None
            row["action"] = _action(row["layer"], found, provider)
    return rows


def _use_agent(spec: ImageSpec, row: dict[str, Any], agents: dict[str, str]) -> bool:
    """Set the image row to the agent content a build would bake now; whether it moved."""
    if spec.name not in agents:
        with tempfile.TemporaryDirectory(prefix="everbake-agent-") as tmp:
            agents[spec.name] = resolve_agent(spec, Path(tmp) / "agent.tar.gz").content
    fps = fingerprints(spec, agents[spec.name])
    if fps.image == row["fingerprint"]:
        return False
    row["fingerprint"] = fps.image
    row["image_name"] = naming.image_name(spec, fps)
    return True


def _action(layer: str, found: Mapping[str, bool | str], provider: Provider) -> str:
    state = found[layer]
    if not isinstance(state, bool):
        return f"unknown ({state})"
    if layer == "base":
        if found["image"] is True:
            return "none (image up to date)"  # build-image stops at the image lookup
        if state:
            return provider.reuse_action
        return "build"
    if state:
        return "up to date"
    base = found["base"]
    return "build (base missing)" if base is False else "build"


def add_changes(
    rows: list[dict[str, Any]], specs: Iterable[ImageSpec], settings: Settings | None = None
) -> list[dict[str, Any]]:
    """On every image row about to be built: ``changes``, what differs from the newest
    build of the same spec on that provider (`diff-images` lines, e.g. "solver highs
    1.8.1 → 1.9.0"), and ``since``, that build's image; nothing when none was built."""
    settings = settings or Settings()
    by_name = {spec.name: spec for spec in specs}
    for row in rows:
        if row["layer"] != "image" or not str(row.get("action", "")).startswith("build"):
            continue
        spec = by_name[row["image"]]
        old = newest_record(spec, row["provider"], settings)
        if old is None:
            continue
        new = {**would_be_record(spec, row["provider"]), "image": row["image_name"]}
        found = image_packages.diff(image_packages.describe(old), image_packages.describe(new))
        row["since"] = old.get("image")
        row["changes"] = image_packages.lines(found)
    return rows


def format_changes(rows: list[dict[str, Any]]) -> str:
    """The changes of each image to be rebuilt, under the plan's table."""
    out = []
    for row in rows:
        if "changes" in row:
            out.append(f"{row['image']} ({row['provider']}): {row['since']} → {row['image_name']}")
            out += [f"  {line}" for line in row["changes"] or ["(no input named differs)"]]
    return "\n".join(out)


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
