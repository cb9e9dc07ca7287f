"""Reading image specs: find the file, read its TOML (with the line of each key),
merge it over defaults.toml, then convert and check it into one ImageSpec or
one SpecError listing every problem of the file, naming the file, the line when
known, the key, what is wrong and how to fix it."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from everbake.errors import SpecError
from everbake.spec.convert import convert_table
from everbake.spec.rules import Problems, check, did_you_mean
from everbake.spec.schema import IMAGES_DIR, REPO_ROOT, ImageSpec


def resolve_path(name_or_path: str | Path, images_dir: Path | None = None) -> Path:
    """A spec name ('optimization') or a path to a .toml file -> the file's path."""
    images_dir = images_dir or IMAGES_DIR
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise SpecError(
                [
                    f"{text}: no such image spec file; give a name in {images_dir} or a path "
                    "to a .toml file"
                ]
            )
        return path
    path = images_dir / f"{text}.toml"
    if not path.is_file():
        names = list_images(images_dir)
        hint = did_you_mean(text, names)
        raise SpecError(
            [
                f"--image {text}: no image spec named '{text}' in {images_dir}; {hint}choose "
                f"one of: {', '.join(names) or '(none)'}"
            ]
        )
    return path


def list_images(images_dir: Path | None = None) -> list[str]:
    images_dir = images_dir or IMAGES_DIR
    return sorted(p.stem for p in images_dir.glob("*.toml") if p.stem != "defaults")


def load_spec(name_or_path: str | Path, images_dir: Path | None = None) -> ImageSpec:
    """Load, merge over defaults.toml, validate; raise SpecError listing every problem."""
    path = resolve_path(name_or_path, images_dir)
    # defaults.toml next to the spec, else the one in the images folder.
    defaults_path = path.parent / "defaults.toml"
    if not defaults_path.is_file():
        defaults_path = (images_dir or IMAGES_DIR) / "defaults.toml"
    repo_root = repo_root_of(images_dir)
    files = [SourceFile.read(path)]
    if defaults_path.is_file() and defaults_path.resolve() != path.resolve():
        files.append(SourceFile.read(defaults_path))
    problems = [p for f in files for p in f.problems]
    if problems:
        raise SpecError(problems)
    merged: dict[str, Any] = {}
    for source in reversed(files):  # defaults first, the image file wins
        merged = _merge(merged, source.data)
    found = Problems(_where(files))
    spec = convert_table(ImageSpec, merged, found)
    spec = dataclasses.replace(spec, source_path=path, repo_root=repo_root)
    check(spec, found)
    if found.lines:
        raise SpecError(found.lines)
    return spec


def repo_root_of(images_dir: Path | None) -> Path:
    """The repository of an images folder is its parent, when it has templates/."""
    if images_dir is not None and (images_dir.resolve().parent / "templates").is_dir():
        return images_dir.resolve().parent
    return REPO_ROOT


def _merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class SourceFile:
    path: Path
    data: dict[str, Any]
    lines: dict[str, int]
    problems: list[str]

    @classmethod
    def read(cls, path: Path) -> SourceFile:
        shown = display_path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return cls(
                path,
                {},
                {},
                [f"{shown}: cannot read the file ({exc}); fix its permissions or encoding (UTF-8)"],
            )
        if not text.strip():
            return cls(
                path,
                {},
                {},
                [
                    f"{shown}: the file is empty; an image spec needs at least name, family "
                    "and [[solvers]] (see images/optimization.toml)"
                ],
            )
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            where = f":{match.group(1)}" if match else ""
            return cls(path, {}, {}, [f"{shown}{where}: not valid TOML ({exc}); fix the syntax"])
        return cls(path, data, _line_index(text), [])


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY_RE = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=')


def _line_index(text: str) -> dict[str, int]:
    """Key path ('solvers[1].install', 'build.gcp') -> line number, best effort."""
    index: dict[str, int] = {}
    table = ""
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            name = header.group(2).replace('"', "").replace(" ", "")
            if header.group(1) == "[[":
                counts[name] = counts.get(name, -1) + 1
                table = f"{name}[{counts[name]}]"
            else:
                table = name
            index.setdefault(table, number)
            continue
        key = _KEY_RE.match(line)
        if key:
            name = key.group(1).replace('"', "").replace(" ", "")
            index.setdefault(f"{table}.{name}" if table else name, number)
    return index


def _where(files: list[SourceFile]) -> Callable[[str], str]:
    def where(key: str) -> str:
        """'file:line' of the key, looking in the image file first, then defaults."""
        probe = key
        while probe:
            for source in files:
                if probe in source.lines:
                    return f"{display_path(source.path)}:{source.lines[probe]}"
            probe = probe.rpartition(".")[0] if "." in probe else ""
        return display_path(files[0].path)

    return where
