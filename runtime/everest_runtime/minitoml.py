"""A small TOML reader for Python < 3.11 (no tomllib): tables, strings, numbers,
booleans and (multi-line) arrays -- everything an everest.toml needs."""

from __future__ import annotations

import json
import re
from typing import Any

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"[+-]?[0-9_]+(\.[0-9_]+)?([eE][+-]?[0-9]+)?")


class TOMLDecodeError(ValueError):
    pass


def loads(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    table = doc
    pos = 0

    n = len(text)

    def fail(msg: str):
        raise TOMLDecodeError(f"{msg} (line {text.count(chr(10), 0, pos) + 1})")

    def skip(newlines: bool) -> None:
        nonlocal pos
        while pos < n:
            c = text[pos]
            if c in " \t\r" or (newlines and c == "\n"):
                pos += 1
            elif c == "#":
                while pos < n and text[pos] != "\n":
                    pos += 1
            else:
                break

    def key() -> list[str]:
        nonlocal pos
        parts = []
        while True:
            skip(False)
            if pos < n and text[pos] in "\"'":
                parts.append(string())
            else:
                m = _BARE.match(text, pos)
                if m is None:
                    raise TOMLDecodeError(
                        f"expected a key (line {text.count(chr(10), 0, pos) + 1})"
                    )
                parts.append(m.group())
                pos = m.end()
            skip(False)
            if pos < n and text[pos] == ".":
                pos += 1
                continue
            return parts

    def string() -> str:
        nonlocal pos
        quote = text[pos]
        end = pos + 1
        while end < n and text[end] != quote and text[end] != "\n":
            end += 2 if quote == '"' and text[end] == "\\" else 1
        if end >= n or text[end] != quote:
            fail("unterminated string")
        raw = text[pos + 1 : end]
        pos = end + 1
        if quote == "'":
            return raw
        try:
            return json.loads('"' + raw + '"')
        except ValueError:
            fail("bad escape in string")
        return ""

    def value() -> Any:
        nonlocal pos
        skip(False)
        if pos >= n:
            fail("expected a value")
        c = text[pos]
        if c in "\"'":
            if text.startswith(c * 3, pos):
                fail("multi-line strings are not supported here")
            return string()
        if c == "[":
            pos += 1
            items: list[Any] = []
            while True:
                skip(True)
                if pos < n and text[pos] == "]":
                    pos += 1
                    return items
                items.append(value())
                skip(True)
                if pos < n and text[pos] == ",":
                    pos += 1
                elif pos < n and text[pos] == "]":
                    continue
                else:
                    fail("expected ',' or ']' in array")
        for word, val in (("true", True), ("false", False)):
            if text.startswith(word, pos):
                pos += len(word)
                return val
        m = _NUMBER.match(text, pos)
        if m:
            pos = m.end()
            s = m.group().replace("_", "")
            return float(s) if (m.group(1) or m.group(2)) else int(s)
        fail("unsupported value")

    def descend(root: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        for p in parts:
            root = root.setdefault(p, {})
            if not isinstance(root, dict):
                fail(f"{p!r} is not a table")
        return root

    while True:
        skip(True)
        if pos >= n:
            return doc
        if text[pos] == "[":
            pos += 1
            parts = key()
            if pos >= n or text[pos] != "]":
                fail("expected ']'")
            pos += 1
            table = descend(doc, parts)
        else:
            parts = key()
            if pos >= n or text[pos] != "=":
                fail("expected '='")
            pos += 1
            holder = descend(table, parts[:-1])
            if parts[-1] in holder:
                fail(f"duplicate key {parts[-1]!r}")
            holder[parts[-1]] = value()
        skip(False)
        if pos < n and text[pos] != "\n":
            fail("expected the end of the line")
