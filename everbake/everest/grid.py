"""A sweep's grid file (TOML or JSON): the variations of one job, each a future job.

    [base]                      # what every variation shares (all keys optional)
    version = "v1.2"
    params = { time_limit = 60 }
    data = "job/data.tar.gz"    # relative to the grid file
    resource = "65a1..."
    debug = false

    [product]                   # every combination of these lists...
    version = ["v1.2", "v1.3"]
    data = ["small.tar.gz", "big.tar.gz"]
    [product.params]
    freight = [80, 90, 100]

    [[variations]]              # ...and/or an explicit list (same keys as [base])
    params = { freight = 120 }

Each variation is [base] overlaid with its own values (params merge key by key).
Every problem names the file and the key.
"""

from __future__ import annotations

import difflib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from everbake.errors import EverbakeError

FIELDS = ("version", "params", "data", "resource", "debug")
TOP_KEYS = ("base", "product", "variations")


class GridError(EverbakeError):
    """A grid file that cannot become a list of variations."""


@dataclass(frozen=True)
class Variation:
    """One job of a sweep: where it comes from (label) and what it submits."""

    index: int
    label: str  # what varies, e.g. "freight=80 version=v1.3"
    version: str
    params: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # a local archive path (absolute) or an Everest file URI
    resource: str | None = None
    debug: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "version": self.version,
            "params": self.params,
            "data": self.data,
            "resource": self.resource,
            "debug": self.debug,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variation:
        return cls(
            **{k: data[k] for k in ("index", "label", "version", "params", "data")},
            resource=data.get("resource"),
            debug=bool(data.get("debug")),
        )


def load_grid(path: Path) -> list[Variation]:
    """Parse ``path`` (.toml or .json) into its variations, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError(f"--grid {path}: cannot read it ({exc.strerror})") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise GridError(f"{path}: not valid {kind}: {exc}") from None
    return parse_grid(doc, path)


def parse_grid(doc: Any, path: Path) -> list[Variation]:
    where = _Where(path)
    if not isinstance(doc, dict):
        raise where.error("", "the grid must be a table with [base], [product] or [[variations]]")
    where.known(doc, TOP_KEYS, "")
    base = where.fields(doc.get("base", {}), "base")
    combos = _product(where, doc.get("product"))
    explicit = doc.get("variations", [])
    if not isinstance(explicit, list):
        raise where.error("variations", "must be a list of tables ([[variations]])")
    overlays = combos + [where.fields(item, f"variations[{n}]") for n, item in enumerate(explicit)]
    if not overlays:
        raise where.error("", "no variations: add a [product] table or [[variations]] entries")
    result = []
    for n, overlay in enumerate(overlays):
        merged = {**base, **overlay}
        merged["params"] = {**base.get("params", {}), **overlay.get("params", {})}
        key = f"variations[{n - len(combos)}]" if n >= len(combos) else f"product#{n}"
        if not merged.get("version"):
            raise where.error(key, "no version: set version in [base], [product] or the variation")
        result.append(
            Variation(
                index=n,
                label=_label(overlay) or f"#{n}",
                version=str(merged["version"]),
                params=merged["params"],
                data=_data_path(merged.get("data"), path),
                resource=merged.get("resource"),
                debug=bool(merged.get("debug", False)),
            )
        )
    return result


def _product(where: _Where, table: Any) -> list[dict[str, Any]]:
    if table is None:
        return []
    if not isinstance(table, dict):
        raise where.error("product", "must be a table of lists")
    where.known(table, FIELDS, "product")
    axes: list[tuple[tuple[str, ...], list[Any]]] = []
    for name, values in table.items():
        if name == "params":
            if not isinstance(values, dict):
                raise where.error("product.params", "must be a table of lists")
            for param, choices in values.items():
                axes.append((("params", param), where.values(choices, f"product.params.{param}")))
        else:
            axes.append(((name,), where.values(values, f"product.{name}")))
    combos = []
    for picks in itertools.product(*(values for _, values in axes)):
        overlay: dict[str, Any] = {}
        for (key, *sub), value in zip([k for k, _ in axes], picks, strict=True):
            if sub:
                overlay.setdefault("params", {})[sub[0]] = value
            else:
                overlay[key] = value
        combos.append(where.fields(overlay, "product"))
    return combos


def _label(overlay: dict[str, Any]) -> str:
    parts = [f"{k}={_short(v)}" for k, v in sorted(overlay.get("params", {}).items())]
    parts += [f"{k}={_short(overlay[k])}" for k in FIELDS if k != "params" and k in overlay]
    return " ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, str):
        return Path(value).name if "/" in value and not value.startswith("/api/") else value
    return json.dumps(value, separators=(",", ":"))


def _data_path(value: Any, grid: Path) -> str | None:
    """Data archives are relative to the grid file; Everest file URIs pass as they are."""
    if value is None or str(value).startswith(("/api/", "http://", "https://")):
        return value
    return str((grid.parent / str(value)).resolve())


class _Where:
    """Type checks whose errors name the grid file and the key."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, message: str) -> GridError:
        return GridError(f"{self.path}: {key + ': ' if key else ''}{message}")

    def known(self, table: dict[str, Any], valid: tuple[str, ...], prefix: str) -> None:
        for name in table:
            if name not in valid:
                near = difflib.get_close_matches(name, valid, n=1)
                fix = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(valid)}"
                key = f"{prefix}.{name}" if prefix else name
                raise self.error(key, f"unknown key; {fix}")

    def values(self, choices: Any, key: str) -> list[Any]:
        if not isinstance(choices, list) or not choices:
            raise self.error(key, "must be a non-empty list of values to vary over")
        return choices

    def fields(self, table: Any, key: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.error(key, "must be a table")
        self.known(table, FIELDS, key)
        for name in ("version", "data", "resource"):
            if name in table and not isinstance(table[name], str):
                raise self.error(f"{key}.{name}", f"must be a string, not {table[name]!r}")
        if "params" in table and not isinstance(table["params"], dict):
            raise self.error(f"{key}.params", "must be a table of parameter values")
        if "debug" in table and not isinstance(table["debug"], bool):
            raise self.error(f"{key}.debug", "must be true or false")
        return dict(table)
