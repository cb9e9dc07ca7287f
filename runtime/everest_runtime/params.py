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


def load(path: Path) -> dict[str, Any]:
    """Read params.json; a missing file means no parameters."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object {{...}}, not {type(data).__name__}")
    return data


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
    argv: list[str] = []
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
            argv.append(flag if value else "--no-" + key)
        elif isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
            for item in value:
                argv.extend([flag, _scalar(item)])
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
            argv.extend([flag, str(path)])
        else:
            argv.extend([flag, _scalar(value)])
    return argv


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)
