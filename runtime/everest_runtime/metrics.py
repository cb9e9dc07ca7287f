"""The model's own numbers: work/out/metrics.json, checked, becomes the task's metrics.json.

A model may write ``out/metrics.json`` in its working directory: one flat JSON object
whose values are numbers, booleans or short strings (a sweep turns its keys into
summary columns). The runner copies it to ``T/metrics.json`` after the results.
Anything else (a link, a huge file, nesting, long strings, NaN) is refused with one
reason for the log: a bad metrics file never fails the task.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from .outputs import open_regular, write_text

SOURCE = os.path.join("out", "metrics.json")
TARGET = "metrics.json"
MAX_BYTES = 64 * 1024
MAX_KEYS = 200
MAX_STRING = 200  # characters: a label, not a report


class BadMetrics(ValueError):
    """Why out/metrics.json was not taken (one line for the log)."""


def read(work: Path) -> dict[str, Any] | None:
    """The checked object, None when the model wrote none; BadMetrics otherwise."""
    path = work / SOURCE
    try:
        fd = open_regular(path)  # never through a link the model left
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadMetrics(f"{SOURCE} is not a regular file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise BadMetrics(f"{SOURCE} is larger than {MAX_BYTES // 1024} KiB")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadMetrics(f"{SOURCE} is not JSON ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise BadMetrics(f"{SOURCE} must hold one JSON object, not {type(data).__name__}")
    if len(data) > MAX_KEYS:
        raise BadMetrics(f"{SOURCE} has {len(data)} keys; at most {MAX_KEYS}")
    for key, value in data.items():
        _check(key, value)
    return data


def copy(work: Path, task: Path, log: Callable[[str], None], redact: Callable[[str], str]) -> bool:
    """Copy a valid out/metrics.json to T/metrics.json; True when written.

    OSError (a full disk) is left to the caller, which names what was lost."""
    try:
        data = read(work)
    except BadMetrics as exc:
        log(f"warning: {redact(str(exc))}; metrics.json not written")
        return False
    if data is None:
        return False
    # Keys and strings are the model's words: scrubbed like every channel leaving the task.
    text = redact(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    write_text(task / TARGET, text + "\n")
    return True


def _check(key: str, value: Any) -> None:
    if not key or len(key) > MAX_STRING or any(ord(c) < 32 for c in key):
        raise BadMetrics(f"{SOURCE}: key {key[:40]!r} must be 1-{MAX_STRING} printable characters")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        return  # NaN and Infinity never get here (parse_constant refuses them)
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise BadMetrics(f"{SOURCE}: {key} is a string over {MAX_STRING} characters")
        return
    raise BadMetrics(f"{SOURCE}: {key} is {type(value).__name__}; give a number or a short string")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
