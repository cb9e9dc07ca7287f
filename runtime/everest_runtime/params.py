"""JSON parameters -> the model's argv (always a list, never a shell string).

Styles (everest.toml `parameters`):
  flags  --key value; true -> --key, false -> --no-key; a list -> --key v per item;
         null -> the flag is left out
  json   --params <file holding the parameters>
  none   nothing
Nested objects (and lists holding objects/lists) follow `nested`: "refuse" (a clear
error) or "json-file" (--key <file holding that value as JSON>).
The parameter "debug" belongs to the runner and is never passed on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

RUNNER_KEYS = ("debug",)
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


MAX_DEPTH = 100  # nesting levels; json (and Python's recursion) fails somewhat deeper
MAX_DIGITS = 4300  # Python 3.11's int conversion limit; the same on every version here
MAX_ARG = 128 * 1024 - 1  # Linux MAX_ARG_STRLEN (32 pages) with its NUL


class _Extreme(ValueError):
    """A value json accepts but a model cannot be given; ``needle`` finds it in the text."""

    def __init__(self, what: str, needle: str) -> None:
        super().__init__(what)
        self.what, self.needle = what, needle


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Extreme(f"a number with {len(text.lstrip('-'))} digits (at most {MAX_DIGITS}; "
                       "pass it as a string)", text[:40])  # fmt: skip
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Extreme(f"{text[:20]}, beyond what a floating-point number holds", text[:40])
    return value


def _constant(text: str) -> float:
    raise _Extreme(f"{text}, which is not valid JSON", text)


def load(path: Path) -> dict[str, Any]:
    """Read params.json; a missing file means no parameters. Values JSON allows
    but no model can take (too deep, too many digits, beyond a float) are one
    line naming the top-level key."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except _Extreme as exc:
        key = _key_at(text, text.find(exc.needle))
        raise ConfigError(f"{path}: {_named(key)} holds {exc.what}") from None
    except RecursionError:
        key = _key_at(text, _deep_position(text, MAX_DEPTH))
        raise ConfigError(f"{path}: {_named(key)} is nested too deeply; flatten it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object {{...}}, not {type(data).__name__}")
    for key, value in data.items():
        if _depth(value) > MAX_DEPTH:
            raise ConfigError(
                f"{path}: {_named(key)} is nested more than {MAX_DEPTH} levels deep; flatten it"
            )
    return data


def _named(key: str | None) -> str:
    return f"parameter {key!r}" if key is not None else "a value"


def _depth(value: Any) -> int:
    """Nesting depth without recursion (the value may be deep)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                todo.extend(
                    (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def _scan(text: str):
    """(position, character, depth) of each structural character outside strings,
    and ("key", start, text) for each top-level key."""
    depth, i, n = 0, 0, len(text)
    expect_key = False
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if depth == 1 and expect_key:
                yield ("key", i, text[i + 1 : end])
                expect_key = False
            i = end + 1
            continue
        if c in "{[":
            depth += 1
            expect_key = depth == 1 and c == "{"
        elif c in "}]":
            depth -= 1
        elif c == "," and depth == 1:
            expect_key = True
        yield ("char", i, depth)
        i += 1


def _key_at(text: str, position: int) -> str | None:
    """The top-level key whose value holds ``position``."""
    key = None
    for kind, at, value in _scan(text):
        if at > position:
            break
        if kind == "key":
            key = str(value)
    return key if position >= 0 else None


def _deep_position(text: str, limit: int) -> int:
    for kind, at, depth in _scan(text):
        if kind == "char" and isinstance(depth, int) and depth > limit:
            return at
    return -1


def model_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in RUNNER_KEYS}


def to_argv(params: dict[str, Any], style: str, nested: str, files_dir: Path) -> list[str]:
    """Arguments for the model; files (json style, json-file nesting) go in files_dir."""
    params = model_params(params)
    if style == "none":
        return []
    if style == "json":
        files_dir.mkdir(parents=True, exist_ok=True)
        path = files_dir / "params.json"
        path.write_text(json.dumps(params, indent=2, sort_keys=True), encoding="utf-8")
        return ["--params", str(path)]
    if style != "flags":
        raise ConfigError(f"unknown parameters style {style!r}; use flags, json or none")
    pairs: list[tuple[str, str]] = []  # (parameter, argument)
    for key, value in params.items():
        if not _KEY.match(key):
            raise ConfigError(
                f"params.json: key {key!r} cannot be a command-line flag "
                "(use letters, digits, '_', '-', '.'; or parameters = \"json\")"
            )
        flag = "--" + key
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, flag if value else "--no-" + key))
        elif isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
            for item in value:
                pairs += [(key, flag), (key, _scalar(item))]
        elif isinstance(value, (dict, list)):
            if nested != "json-file":
                raise ConfigError(
                    f"params.json: {key!r} is a nested "
                    f"{'object' if isinstance(value, dict) else 'list'}"
                    ' and everest.toml has nested = "refuse"; flatten it or set'
                    ' nested = "json-file"'
                )
            files_dir.mkdir(parents=True, exist_ok=True)
            path = files_dir / f"param-{key}.json"
            path.write_text(json.dumps(value, indent=2, sort_keys=True), encoding="utf-8")
            pairs += [(key, flag), (key, str(path))]
        else:
            pairs += [(key, flag), (key, _scalar(value))]
    for key, arg in pairs:
        _check_arg(key, arg)
    return [arg for _, arg in pairs]


_JSON_MODE = 'set parameters = "json" in everest.toml (the model then reads a file)'


def _check_arg(key: str, arg: str) -> None:
    """What exec() would refuse or mangle, refused here with the parameter named."""
    if "\0" in arg:
        raise ConfigError(
            f"params.json: parameter {key!r} holds a NUL character, which no command-line "
            f"argument can carry; {_JSON_MODE}"
        )
    try:
        size = len(arg.encode("utf-8"))
    except UnicodeEncodeError as exc:
        bad = arg[exc.start]
        raise ConfigError(
            f"params.json: parameter {key!r} holds a lone surrogate (\\u{ord(bad):04x}), which "
            "is not valid Unicode; send the text it stands for"
        ) from None
    if size > MAX_ARG:
        raise ConfigError(
            f"params.json: parameter {key!r} is {size} bytes, more than one command-line "
            f"argument takes ({MAX_ARG + 1} bytes); {_JSON_MODE}"
        )


def check_command_line(argv: list[str], env: dict[str, str], params: dict[str, Any]) -> None:
    """The whole command line against the system's limit (ARG_MAX), naming the
    largest parameter when it does not fit."""
    import os

    try:
        limit = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError, AttributeError):
        return
    used = sum(len(a.encode("utf-8", "surrogateescape")) + 1 + 8 for a in argv)
    used += sum(len(k) + len(v.encode("utf-8", "surrogateescape")) + 2 + 8 for k, v in env.items())
    if used <= limit - 4096 or not params:
        return
    biggest = max(model_params(params) or params, key=lambda k: len(json.dumps(params[k])))
    raise ConfigError(
        f"params.json: the command line would be {used} bytes, more than this system takes "
        f"({limit}); the largest parameter is {biggest!r}; {_JSON_MODE}"
    )


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)
