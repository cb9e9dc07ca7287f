"""pin-agent: download the Everest agent archive an image spec names and pin it there.

Cloud builds need `[agent] sha256`; this fetches the archive for a ref (the
spec's `source` with `{ref}` filled in), and writes `ref` and `sha256` into the
image's own spec file. The file is edited line by line, so its comments and
layout stay; the result is checked (parsed and loaded as a spec) before it
replaces the file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import tomllib

from everbake.agent_fetch import AgentSource, fetch_agent
from everbake.errors import EverbakeError, SpecError
from everbake.providers import Provider
from everbake.spec import ImageSpec, load_spec, resolve_path
from everbake.ui import phase

_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ANY_TABLE = re.compile(r"^\s*\[")


@dataclass(frozen=True)
class Pinned:
    spec_file: Path
    source: str  # what was downloaded (URL or path, {ref} filled in)
    ref: str
    sha256: str


def pin_agent(
    name_or_path: str | Path, images_dir: Path | None = None, ref: str | None = None
) -> Pinned:
    """Download the agent for ``ref`` (default: the spec's) and pin it in the spec file."""
    spec = load_spec(name_or_path, images_dir)
    path = resolve_path(name_or_path, images_dir)
    ref = ref or spec.agent.ref
    where = spec.agent.source.replace("{ref}", ref)
    source = AgentSource(spec.agent.source, ref, sha256=None, required=True)
    with (
        tempfile.TemporaryDirectory(prefix="everbake-agent-") as tmp,
        phase(f"download the Everest agent: {where}"),
    ):
        fetched = fetch_agent(source, Path(tmp) / "agent.tar.gz", spec.repo_root)
    assert fetched is not None  # required=True: unreachable raises
    sha256 = fetched[1]
    text = path.read_text(encoding="utf-8")
    _write_checked(path, set_agent_keys(text, {"ref": ref, "sha256": sha256}), ref, sha256)
    return Pinned(path, where, ref, sha256)


def unpinned_agent(spec: ImageSpec, provider: Provider) -> str | None:
    """Why ``provider`` refuses ``spec``'s agent (no [agent] sha256), or None."""
    if spec.agent.sha256 or not provider.needs_pinned_agent:
        return None
    return (
        f"{spec.source_path}: [agent] sha256 is not set, and {provider.name} builds bake only a "
        f"pinned agent: run 'invoke pin-agent --image {spec.name}' (it downloads the "
        "archive and writes ref and sha256 into the spec)"
    )


def require_pinned_agents(specs: Iterable[ImageSpec], providers: Iterable[Provider]) -> None:
    """Refuse, before anything starts, every spec a provider would build unpinned."""
    chosen = list(providers)
    problems = [p for s in specs for c in chosen if (p := unpinned_agent(s, c))]
    if problems:
        raise SpecError(problems)


def set_agent_keys(text: str, values: dict[str, str]) -> str:
    """``text`` (a TOML spec) with these keys of its [agent] table set, nothing else
    touched: an existing key keeps its indentation and trailing comment, a missing
    one goes after the table's last key, a missing table is appended."""
    lines = text.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if (m := _TABLE.match(line)) and m[1] == "agent"),
        None,
    )
    if start is None:
        block = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
        gap = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{gap}[agent]\n{block}"
    end = next((i for i in range(start + 1, len(lines)) if _ANY_TABLE.match(lines[i])), len(lines))
    for key, value in values.items():
        assign = re.compile(
            rf"^(\s*{re.escape(key)}\s*=\s*)"
            r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s#]+)(.*)$",
            re.S,
        )
        for i in range(start + 1, end):
            if m := assign.match(lines[i]):
                lines[i] = f"{m[1]}{json.dumps(value)}{m[3]}"
                break
        else:
            last = start
            for i in range(start + 1, end):
                if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                    last = i
            if not lines[last].endswith("\n"):
                lines[last] += "\n"
            lines.insert(last + 1, f"{key} = {json.dumps(value)}\n")
            end += 1
    return "".join(lines)


def _write_checked(path: Path, text: str, ref: str, sha256: str) -> None:
    """Replace ``path`` with ``text`` only if it parses, pins what we asked for and
    still loads as a spec (temporary file beside it, then rename)."""
    try:
        agent = tomllib.loads(text).get("agent", {})
    except tomllib.TOMLDecodeError as exc:
        agent = {"error": str(exc)}
    if agent.get("ref") != ref or agent.get("sha256") != sha256:
        raise EverbakeError(
            f"{path}: could not set [agent] ref and sha256 without rewriting the file "
            f"(is [agent] written as dotted keys or an inline table?); set them by hand: "
            f'ref = "{ref}", sha256 = "{sha256}"'
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            load_spec(tmp, path.parent)
        except SpecError as exc:
            raise EverbakeError(
                f"{path}: not changed, the pinned spec would not load: {exc.problems[0]}"
            ) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
