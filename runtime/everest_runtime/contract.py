"""The model contract: how to run a model, read from its everest.toml, or the
fallback for a model that ships run-task.sh."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, NamedTuple

from .errors import ConfigError

STYLES = ("flags", "json", "none")
NESTED = ("refuse", "json-file")
RUN_TASK_RESULTS = ("results/**/*",)
_FIELDS = ("name", "command", "parameters", "nested", "results", "debug", "status_prefix")


class Contract(NamedTuple):
    name: str
    command: list[str]  # absolute where it names a file in the model's tree
    parameters: str = "flags"
    nested: str = "refuse"
    results: tuple[str, ...] = ()
    debug: tuple[str, ...] = ()
    status_prefix: str | None = "##status "
    source: str = "everest.toml"


def _toml(text: str) -> dict[str, Any]:
    try:
        return importlib.import_module("tomllib").loads(text)  # Python 3.11+
    except ImportError:
        from . import minitoml

        return minitoml.loads(text)


def load(model_dir: Path) -> Contract:
    toml_path = model_dir / "everest.toml"
    if toml_path.is_file():
        return _from_toml(toml_path, model_dir)
    script = model_dir / "run-task.sh"
    if script.is_file():
        return Contract(
            name=model_dir.name,
            command=["bash", str(script)],
            parameters="none",
            results=RUN_TASK_RESULTS,
            source="run-task.sh",
        )
    raise ConfigError(
        f"{model_dir}: no everest.toml and no run-task.sh; add an everest.toml "
        "saying how to run the model (see the everest-runtime README)"
    )


def _from_toml(path: Path, model_dir: Path) -> Contract:
    try:
        doc = _toml(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # TOMLDecodeError of either parser
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    model = doc.get("model")
    if not isinstance(model, dict):
        raise ConfigError(f"{path}: needs a [model] table (see the everest-runtime README)")
    for key in model:
        if key not in _FIELDS:
            import difflib

            close = difflib.get_close_matches(key, _FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(_FIELDS)}"
            raise ConfigError(f"{path}: unknown field model.{key}{hint}")

    def strings(field: str, default: list[str]) -> list[str]:
        value = model.get(field, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: model.{field} must be a list of strings")
        return list(value)

    def choice(field: str, options, default: str) -> str:
        value = model.get(field, default)
        if value not in options:
            raise ConfigError(
                f"{path}: model.{field} = {value!r}; use one of: {', '.join(options)}"
            )
        return value

    command = strings("command", [])
    if not command:
        raise ConfigError(f'{path}: model.command is required, e.g. ["python", "main.py"]')
    prefix = model.get("status_prefix", "##status ")
    if not isinstance(prefix, str):
        raise ConfigError(f'{path}: model.status_prefix must be a string ("" to turn it off)')
    for field in ("results", "debug"):
        for pattern in strings(field, []):
            if pattern.startswith("/") or ".." in pattern.split("/"):
                raise ConfigError(
                    f"{path}: model.{field} pattern {pattern!r} must stay inside the work directory"
                )
    return Contract(
        name=str(model.get("name", model_dir.name)),
        command=resolve_command(command, model_dir),
        parameters=choice("parameters", STYLES, "flags"),
        nested=choice("nested", NESTED, "refuse"),
        results=tuple(strings("results", [])),
        debug=tuple(strings("debug", [])),
        status_prefix=prefix or None,
    )


def resolve_command(command: list[str], model_dir: Path) -> list[str]:
    """A leading "python" is this interpreter; relative paths to files in the
    model's tree become absolute (the model runs in the work directory)."""
    argv = list(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    for i, arg in enumerate(argv):
        if not arg.startswith("-") and not Path(arg).is_absolute() and (model_dir / arg).is_file():
            argv[i] = str((model_dir / arg).resolve())
    return argv
