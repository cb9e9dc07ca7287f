"""Rendered Packer directories on disk: writing them, parsing them back, checking
their structure and `packer validate`.

`write` is the one writer (atomic per file); `write_layers` renders
(everbake.render, pure) and writes each layer; `check_rendered` and
`validate_rendered` check what was written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from everbake import packer
from everbake.errors import RenderError
from everbake.files import write_atomic
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.providers import BuildSettings, Provider
from everbake.render import VAR_FILE, VERSIONS_FILE, Rendered, render_layer
from everbake.spec import ImageSpec


def write_layers(
    spec: ImageSpec,
    provider: Provider,
    out_root: Path = Path("build"),
    packer_version: tuple[int, int, int] | None = None,
    settings: BuildSettings | None = None,
    dist_root: Path = Path("dist"),
    fps: Fingerprints | None = None,
    layers: tuple[str, ...] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Rendered]:
    """Render (everbake.render) and write ``layers`` (default: every layer of the provider).

    ``environ`` is where a project/folder the spec leaves out may come from
    (none by default); ``packer_version`` None means the packer on PATH.
    """
    if packer_version is None:
        packer_version = packer.detect_version_or_none() or (99, 0, 0)
    fps = fps or fingerprints(spec)
    done = []
    for layer in layers or provider.layers:
        rendered = render_layer(
            spec,
            provider,
            layer,
            fps=fps,
            packer_version=packer_version,
            settings=settings or BuildSettings(),
            environ={} if environ is None else environ,
            out_root=out_root,
            dist_root=dist_root,
        )
        write(rendered)
        done.append(rendered)
    return done


def write(rendered: Rendered) -> None:
    """Write the files of ``rendered`` (each atomically); drop a versions file this
    Packer must not see."""
    rendered.directory.mkdir(parents=True, exist_ok=True)
    for extra in rendered.dirs:
        extra.mkdir(parents=True, exist_ok=True)
    stale = rendered.directory / VERSIONS_FILE
    if VERSIONS_FILE not in rendered.files and stale.exists():
        stale.unlink()
    for name, text in rendered.files.items():
        write_atomic(rendered.directory / name, text)


# ------------------------------------------------------------- structure checks

_VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)")


def parse_dir(directory: Path) -> dict[str, Any]:
    """All *.pkr.hcl files of a directory parsed with python-hcl2, merged by block type."""
    import hcl2  # with its parser library: ~30 ms that invoke --list need not pay

    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.pkr.hcl")):
        try:
            data = hcl2.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:  # python-hcl2 raises lark errors of many kinds
            raise RenderError(f"{path}: not valid HCL ({str(exc).splitlines()[0]})") from None
        for key, blocks in normalize(data).items():
            merged.setdefault(key, []).extend(blocks if isinstance(blocks, list) else [blocks])
    return merged


_META_KEYS = {"__is_block__", "__start_line__", "__end_line__"}


def normalize(data: Any) -> Any:
    """python-hcl2 output without its bookkeeping: block labels unquoted, meta keys dropped."""
    if isinstance(data, dict):
        return {_unquote(k): normalize(v) for k, v in data.items() if k not in _META_KEYS}
    if isinstance(data, list):
        return [normalize(v) for v in data]
    return data


def check_rendered(directory: Path, provider: Provider) -> None:
    """Structure Packer's -syntax-only does not check: a build block, its sources,
    declared variables, and (yandex) every source argument against the plugin."""
    problems = []
    parsed = parse_dir(directory)
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.pkr.hcl")))
    declared = {name for block in parsed.get("variable", []) for name in block}
    for name in sorted(set(_VAR_REF.findall(text)) - declared):
        problems.append(f"var.{name} is used but not declared")
    values = json.loads((directory / VAR_FILE).read_text())
    for name in sorted(set(values) - declared):
        problems.append(f"{VAR_FILE} sets '{name}', which is not declared")
    sources = {
        f"source.{kind}.{name}"
        for block in parsed.get("source", [])
        for kind, named in block.items()
        for name in named
    }
    builds = parsed.get("build", [])
    if not builds:
        problems.append("no build block")
    for build in builds:
        for ref in build.get("sources", []):
            if _unquote(ref) not in sources:
                problems.append(f"build uses {ref}, which is not defined")
    problems.extend(provider.source_problems(parsed))
    if problems:
        raise RenderError("; ".join(f"{directory}: {p}" for p in problems))


def _unquote(value: Any) -> str:
    return str(value).strip('"')


# ------------------------------------------------------------- packer validation


def validation_env(rendered: Rendered, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `packer validate`: placeholders for values only known at build
    time (project/folder, secrets), so validation needs no credentials or secrets."""
    env = dict(os.environ if base is None else base)
    for name, value in rendered.provider.validation_placeholders(rendered.values).items():
        env.setdefault(name, value)
    for name in rendered.sensitive:
        env[f"PKR_VAR_{name}"] = packer.VALIDATE_PLACEHOLDER
    return env


def validate_rendered(rendered: Rendered, packer_version: tuple[int, int, int]) -> str:
    """Structure checks, `packer fmt -check`, then `packer validate`; returns how deep.

    Packer < 1.7 has no yandex builder: yandex gets -syntax-only plus the
    argument check against the plugin's field list.
    """
    check_rendered(rendered.directory, rendered.provider)
    packer.fmt_check(rendered.directory)
    env = validation_env(rendered)
    syntax_only = rendered.provider.syntax_only(packer_version)
    if packer.supports_plugins(packer_version):
        packer.init(rendered.directory, env)
    packer.validate(rendered.directory, syntax_only=syntax_only, env=env)
    return "syntax + arguments" if syntax_only else "full"
