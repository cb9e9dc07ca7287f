"""Spec + provider -> Packer HCL2 under build/<provider>/<image>/.

Layout: the local provider renders one directory, build/local/<image>/; the
clouds render one directory per layer, build/<provider>/<image>/{base,image}/.
Each holds variables.pkr.hcl, source.pkr.hcl, build.pkr.hcl,
inputs.auto.pkrvars.json (all values), versions.pkr.hcl (only for Packer >= 1.7)
and, for clouds, an empty staging/ directory the build code fills.

Jinja shapes structure only, with [[ ]] / [% %] delimiters because Packer's own
Go templates use {{ }}. Values go to the JSON var file, so no value is ever
parsed as HCL.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from everbake import provision_env
from everbake.errors import RenderError
from everbake.files import write_atomic
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.location import packer_var
from everbake.packer import PLUGINS, supports_plugins
from everbake.providers import BuildSettings, Provider, get
from everbake.providers.yandex import YANDEX_FIELDS
from everbake.spec import ImageSpec

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
VAR_FILE = "inputs.auto.pkrvars.json"
PLAN_FILE = "local-plan.json"
SOURCE_TYPES = {"gcp": "googlecompute", "yandex": "yandex", "local": "null"}
_PLUGIN_OF = {"gcp": "googlecompute", "yandex": "yandex"}


def hcl_string(value: Any) -> str:
    """A JSON/HCL literal with Packer interpolation (${ and %{) escaped."""
    text = json.dumps(value)
    return text.replace("${", "$${").replace("%{", "%%{")


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["hcl"] = hcl_string
    return env


@dataclass(frozen=True)
class Rendered:
    """One Packer directory: a provider's layer of an image."""

    provider: str
    layer: str
    directory: Path
    values: dict[str, Any]
    sensitive: tuple[str, ...]  # variable names whose values come only from PKR_VAR_*


def layer_dir(out_root: Path, provider: Provider, spec: ImageSpec, layer: str) -> Path:
    top = out_root / provider.name / spec.name
    return top if provider.name == "local" else top / layer


def manifest_path(dist_root: Path, provider: str, spec: ImageSpec, layer: str) -> Path:
    """dist/builds/local/<image>.manifest.json; clouds: <cloud>/<image>-<layer>.manifest.json."""
    name = spec.name if provider == "local" else f"{spec.name}-{layer}"
    return dist_root / "builds" / provider / f"{name}.manifest.json"


def render(
    spec: ImageSpec,
    provider: str,
    out_root: Path = Path("build"),
    packer_version: tuple[int, int, int] | None = None,
    *,
    settings: BuildSettings | None = None,
    dist_root: Path = Path("dist"),
    fps: Fingerprints | None = None,
) -> Path:
    """Render every layer of ``spec`` for ``provider``; return build/<provider>/<image>."""
    render_layers(spec, provider, out_root, packer_version, settings, dist_root, fps)
    return out_root / provider / spec.name


def render_layers(
    spec: ImageSpec,
    provider_name: str,
    out_root: Path = Path("build"),
    packer_version: tuple[int, int, int] | None = None,
    settings: BuildSettings | None = None,
    dist_root: Path = Path("dist"),
    fps: Fingerprints | None = None,
    layers: tuple[str, ...] | None = None,
) -> list[Rendered]:
    """Render ``layers`` (default: every layer of the provider)."""
    provider = get(provider_name)
    settings = settings or BuildSettings()
    fps = fps or fingerprints(spec)
    if packer_version is None:
        from everbake.packer import detect_version_or_none

        packer_version = detect_version_or_none() or (99, 0, 0)
    env = environment(spec.repo_root / "templates")
    done = []
    for layer in layers or provider.layers:
        directory = layer_dir(out_root, provider, spec, layer)
        done.append(
            _render_layer(
                env, spec, fps, provider, layer, directory, packer_version, settings, dist_root
            )
        )
    return done


def _render_layer(
    env: jinja2.Environment,
    spec: ImageSpec,
    fps: Fingerprints,
    provider: Provider,
    layer: str,
    directory: Path,
    packer_version: tuple[int, int, int],
    settings: BuildSettings,
    dist_root: Path,
) -> Rendered:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = manifest_path(dist_root, provider.name, spec, layer).resolve()
    manifest.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {"manifest": manifest, "plan_file": (directory / PLAN_FILE).resolve()}
    cloud = provider.name != "local"
    if cloud:
        paths["staging"] = (directory / "staging").resolve()
        paths["staging"].mkdir(exist_ok=True)
        if not provision_env.scripts(spec.repo_root, layer):
            raise RenderError(
                f"no provisioning scripts for the {layer} layer in "
                f"{spec.repo_root / 'provisioning'}; restore provisioning/NN-*.sh"
            )
        paths["scripts"] = [p.resolve() for p in provision_env.cloud_scripts(spec.repo_root, layer)]
    values = provider.template_vars(spec, fps, layer, paths, settings)
    if cloud:
        values["remote_staging"] = provision_env.DEFAULT_STAGING
        env_vars = provision_env.provisioning_env(
            spec, layer, provision_env.DEFAULT_STAGING, build_user=values["ssh_username"]
        )
        values["script_env"] = [f"{k}={v}" for k, v in env_vars.items()]
    secrets = []
    if layer == "image" or not cloud:
        secrets = [
            {"name": name, "env": provision_env.secret_env_name(name)}
            for name in provision_env.embed_secrets(spec)
        ]
    sensitive = tuple(f"secret_{s['name']}" for s in secrets)
    variables = [{"name": k, "type": _hcl_type(v), "sensitive": False} for k, v in values.items()]
    # Where a cloud builds comes from PKR_VAR_* when the spec leaves it out.
    location = packer_var(provider.name)
    if location and location not in values:
        variables.append({"name": location, "type": "string", "sensitive": False})
    variables += [{"name": name, "type": "string", "sensitive": True} for name in sensitive]
    variables.sort(key=lambda v: str(v["name"]))
    context = {
        "spec": spec,
        "layer": layer,
        "values": values,
        "variables": variables,
        "secrets": secrets,
        "source_type": SOURCE_TYPES[provider.name],
    }
    build_template = f"{provider.name}/build.pkr.hcl.j2" if not cloud else "cloud_build.pkr.hcl.j2"
    files = {
        "variables.pkr.hcl": _render(env, "variables.pkr.hcl.j2", context),
        "source.pkr.hcl": _render(env, f"{provider.name}/source.pkr.hcl.j2", context),
        "build.pkr.hcl": _render(env, build_template, context),
        VAR_FILE: json.dumps(values, indent=2, sort_keys=True) + "\n",
    }
    if supports_plugins(packer_version):
        plugin = _PLUGIN_OF.get(provider.name)
        plugins = [(plugin, PLUGINS[plugin])] if plugin else []
        files["versions.pkr.hcl"] = _render(env, "versions.pkr.hcl.j2", {"plugins": plugins})
    stale = directory / "versions.pkr.hcl"
    if "versions.pkr.hcl" not in files and stale.exists():
        stale.unlink()
    for name, text in files.items():
        write_atomic(directory / name, text)
    return Rendered(provider.name, layer, directory, values, sensitive)


def _render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"templates/{name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"templates/{name}: {exc.message} (context: {sorted(context)})") from None


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


def check_rendered(directory: Path, provider: str) -> None:
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
    if provider == "yandex":
        for block in parsed.get("source", []):
            for args in block.get("yandex", {}).values():
                for arg in sorted(set(args) - YANDEX_FIELDS):
                    problems.append(f'source "yandex": unknown argument {arg}')
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
    location = packer_var(rendered.provider)
    if location and location not in rendered.values:
        env.setdefault(f"PKR_VAR_{location}", PLACEHOLDER)
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
    syntax_only = rendered.provider == "yandex" and not packer.supports_plugins(packer_version)
    if packer.supports_plugins(packer_version):
        packer.init(rendered.directory, env)
    packer.validate(rendered.directory, syntax_only=syntax_only, env=env)
    return "syntax + arguments" if syntax_only else "full"
