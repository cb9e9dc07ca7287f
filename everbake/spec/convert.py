"""Merged TOML data -> the schema's dataclasses, driven by their annotations.

A value of the wrong type is reported and replaced by a placeholder, so the
rest of the file is still converted and checked.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from everbake.spec.rules import Problems, did_you_mean
from everbake.spec.schema import SCHEMA_ONLY, VALUE_KEYS


def convert_table(cls: type, data: dict[str, Any], problems: Problems) -> Any:
    """An instance of the dataclass cls from a TOML table, reporting into problems."""
    return _Converter(problems).table(cls, data, "")


class _Converter:
    def __init__(self, problems: Problems):
        self.problem = problems.add
        self.placeholders = problems.placeholders

    def placeholder(self, hint: Any, f: dataclasses.Field[Any] | None, key: str) -> Any:
        """A stand-in for an unusable value, so the rest of the file is still checked."""
        self.placeholders.add(key)
        if f is not None and f.default is not dataclasses.MISSING:
            return f.default
        if f is not None and f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.table(hint, {}, key)
        origin = typing.get_origin(hint)
        if origin is tuple:
            return ()
        if origin is Mapping:
            return types.MappingProxyType({})
        if origin in (types.UnionType, typing.Union):
            return self.placeholder(typing.get_args(hint)[0], None, key)
        return {str: "", bool: False, int: 0}[hint]

    def table(self, cls: type, data: dict[str, Any], key: str) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in SCHEMA_ONLY}
        for name in data:
            if name not in fields:
                self.unknown_key(_join(key, name), name, list(fields))
        values: dict[str, Any] = {}
        for name, f in fields.items():
            sub = _join(key, name)
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    if dataclasses.is_dataclass(hints[name]):
                        values[name] = self.table(hints[name], {}, sub)
                        continue
                    self.problem(sub, f"required key is missing; add '{name} = ...'")
                    values[name] = self.placeholder(hints[name], f, sub)
                continue
            value = self.convert(hints[name], data[name], sub)
            values[name] = self.placeholder(hints[name], f, sub) if value is _BAD else value
        return cls(**values)

    def unknown_key(self, key: str, name: str, valid: list[str]) -> None:
        if key.startswith("secrets.") and name in VALUE_KEYS:
            self.problem(
                key,
                "secret values never go in an image spec; set the value in the build's "
                "environment (see README 'Secrets') and keep only mode/env/metadata_key/path here",
            )
            return
        fix = did_you_mean(name, valid).rstrip() or f"valid keys: {', '.join(sorted(valid))}"
        self.problem(key, f"unknown key; {fix}")

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                self.problem(key, f"expected a table, got {_kind(value)}; write it as [{key}]")
                return _BAD
            return self.table(hint, value, key)
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if hint is str:
            if isinstance(value, str):
                return value
            return self.wrong(key, value, "a string", f'{key.rpartition(".")[2]} = "..."')
        if hint is bool:
            if isinstance(value, bool):
                return value
            return self.wrong(key, value, "true or false", f"{key.rpartition('.')[2]} = true")
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return self.wrong(key, value, "an integer", f"{key.rpartition('.')[2]} = 20")
        if hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value)
            return self.wrong(key, value, "a number >= 0", f"{key.rpartition('.')[2]} = 0.05")
        if origin is tuple:
            if not isinstance(value, list):
                return self.wrong(key, value, "a list", f"{key.rpartition('.')[2]} = [...]")
            # Unusable items are reported and left out; the others are still checked.
            items = [self.convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
            for i, item in enumerate(items):
                if item is _BAD:
                    self.placeholders.add(f"{key}[{i}]")
            return tuple(item for item in items if item is not _BAD)
        if origin in (types.UnionType, typing.Union):  # str | tuple[str, ...]
            if isinstance(value, list):
                return self.convert(args[1], value, key)
            return self.convert(args[0], value, key)
        if origin is Mapping:
            if not isinstance(value, dict):
                return self.wrong(key, value, "a table of named entries", f"[{key}.<name>]")
            out = {}
            for name in sorted(value):
                item = self.convert(args[1], value[name], f"{key}.{name}")
                if item is _BAD:
                    self.placeholders.add(f"{key}.{name}")
                else:
                    out[name] = item
            return types.MappingProxyType(out)
        raise TypeError(f"unsupported schema type {hint!r}")  # a bug in this module

    def wrong(self, key: str, value: Any, expected: str, example: str) -> Any:
        # Never echo what was written under [secrets]: it may be a secret's value.
        shown = "" if key.startswith("secrets") else f" {value!r:.40}"
        self.problem(key, f"expected {expected}, got {_kind(value)}{shown}; write e.g. {example}")
        return _BAD


_BAD = object()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
