"""Spec + provider + explicit settings -> the files of each Packer directory.

Layout: the local provider renders one directory, build/local/<image>/; the
clouds render one directory per layer, build/<provider>/<image>/{base,image}/.
Each holds variables.pkr.hcl, source.pkr.hcl, build.pkr.hcl,
inputs.auto.pkrvars.json (all values), versions.pkr.hcl (only for Packer >= 1.7)
and, for clouds, an empty staging/ directory the build code fills.

Three separate steps: `render_layer` returns the files (name -> text) and writes
nothing, reading neither the process environment nor the packer on PATH (both
are passed in); `write` is the one writer; `check_rendered` and
`validate_rendered` check what was written. Builds stage first and pass what
staging found in the settings, so no rendered file is patched afterwards.

Jinja shapes structure only, with [[ ]] / [% %] delimiters because Packer's own
Go templates use {{ }}. Values go to the JSON var file, so no value is ever
parsed as HCL.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake import provision_env
from everbake.errors import RenderError
from everbake.files import write_atomic
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.packer import supports_plugins
from everbake.providers import BuildSettings, Provider, get
from everbake.spec import ImageSpec
from everbake.templating import environment, render_template

VAR_FILE = "inputs.auto.pkrvars.json"
VERSIONS_FILE = "versions.pkr.hcl"


@dataclass(frozen=True)
class Rendered:
    """One Packer directory: a provider's layer of an image, and its files."""

    provider: str
    layer: str
    directory: Path
    values: dict[str, Any]
    sensitive: tuple[str, ...]  # variable names whose values come only from PKR_VAR_*
    files: Mapping[str, str] = field(default_factory=dict, compare=False)
    # Directories the writer makes besides ``directory`` (the manifest's, staging/).
    dirs: tuple[Path, ...] = ()


def render_layers(
    spec: ImageSpec,
    provider: str | Provider,
    out_root: Path = Path("build"),
    packer_version: tuple[int, int, int] | None = None,
    settings: BuildSettings | None = None,
    dist_root: Path = Path("dist"),
    fps: Fingerprints | None = None,
    layers: tuple[str, ...] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Rendered]:
    """Render and write ``layers`` (default: every layer of the provider).

    ``environ`` is where a project/folder the spec leaves out may come from
    (none by default); ``packer_version`` None means the packer on PATH.
    """
    chosen = get(provider)
    if packer_version is None:
        from everbake.packer import detect_version_or_none

        packer_version = detect_version_or_none() or (99, 0, 0)
    fps = fps or fingerprints(spec)
    done = []
    for layer in layers or chosen.layers:
        rendered = render_layer(
            spec,
            chosen,
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


def render_layer(
    spec: ImageSpec,
    provider: Provider,
    layer: str,
    *,
    fps: Fingerprints,
    packer_version: tuple[int, int, int],
    settings: BuildSettings,
    environ: Mapping[str, str],
    out_root: Path,
    dist_root: Path,
) -> Rendered:
    """The files of one layer's Packer directory; nothing is written."""
    directory = provider.layer_dir(out_root, spec, layer)
    manifest = provider.manifest_path(dist_root, spec, layer).resolve()
    paths: dict[str, Any] = {"manifest": manifest, **provider.render_paths(spec, layer, directory)}
    values = provider.template_vars(spec, fps, layer, paths, settings, environ)
    # Embed-mode secrets are written by the image layer (the local provider's only one).
    secrets = []
    if layer == "image":
        secrets = [
            {"name": name, "env": provision_env.secret_env_name(name)}
            for name in provision_env.embed_secrets(spec)
        ]
    sensitive = tuple(f"secret_{s['name']}" for s in secrets)
    variables = [{"name": k, "type": _hcl_type(v), "sensitive": False} for k, v in values.items()]
    variables += [
        {"name": name, "type": "string", "sensitive": False}
        for name in provider.undeclared_vars(values)
    ]
    variables += [{"name": name, "type": "string", "sensitive": True} for name in sensitive]
    variables.sort(key=lambda v: str(v["name"]))
    context = {
        "spec": spec,
        "layer": layer,
        "values": values,
        "variables": variables,
        "secrets": secrets,
        "source_type": provider.source_type,
    }
    env = environment(spec.repo_root / "templates")
    files = {
        "variables.pkr.hcl": render_template(env, "variables.pkr.hcl.j2", context),
        "source.pkr.hcl": render_template(env, provider.source_template, context),
        "build.pkr.hcl": render_template(env, provider.build_template, context),
        VAR_FILE: json.dumps(values, indent=2, sort_keys=True) + "\n",
    }
    if supports_plugins(packer_version):
        plugin = provider.plugin
        plugins = [(plugin.name, (plugin.source, plugin.version))] if plugin else []
        files[VERSIONS_FILE] = render_template(env, "versions.pkr.hcl.j2", {"plugins": plugins})
    dirs = (manifest.parent, *([paths["staging"]] if "staging" in paths else []))
    return Rendered(provider.name, layer, directory, values, sensitive, files, dirs)


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


def _hcl_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list(string)"
    if isinstance(value, dict):
        return "map(string)"
    return "string"


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


def check_rendered(directory: Path, provider: str | Provider) -> None:
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
    problems.extend(get(provider).source_problems(parsed))
    if problems:
        raise RenderError("; ".join(f"{directory}: {p}" for p in problems))


def _unquote(value: Any) -> str:
    return str(value).strip('"')


# ------------------------------------------------------------- packer validation

PLACEHOLDER = "everbake-validate-only"


def validation_env(rendered: Rendered, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `packer validate`: placeholders for values only known at build
    time (project/folder, secrets), so validation needs no credentials or secrets."""
    env = dict(os.environ if base is None else base)
    for name, value in get(rendered.provider).validation_placeholders(rendered.values).items():
        env.setdefault(name, value)
    for name in rendered.sensitive:
        env[f"PKR_VAR_{name}"] = PLACEHOLDER
    return env


def validate_rendered(rendered: Rendered, packer_version: tuple[int, int, int]) -> str:
    """Structure checks, `packer fmt -check`, then `packer validate`; returns how deep.

    Packer < 1.7 has no yandex builder: yandex gets -syntax-only plus the
    argument check against the plugin's field list.
    """
    from everbake import packer

    check_rendered(rendered.directory, rendered.provider)
    packer.fmt_check(rendered.directory)
    env = validation_env(rendered)
    syntax_only = get(rendered.provider).syntax_only(packer_version)
    if packer.supports_plugins(packer_version):
        packer.init(rendered.directory, env)
    packer.validate(rendered.directory, syntax_only=syntax_only, env=env)
    return "syntax + arguments" if syntax_only else "full"
