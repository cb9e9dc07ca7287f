"""Spec + provider + explicit settings -> the files of each Packer directory (pure).

Layout: the local provider renders one directory, build/local/<image>/; the
clouds render one directory per layer, build/<provider>/<image>/{base,image}/.
Each holds variables.pkr.hcl, source.pkr.hcl, build.pkr.hcl,
inputs.auto.pkrvars.json (all values), versions.pkr.hcl (only for Packer >= 1.7)
and, for clouds, an empty staging/ directory the build code fills.

`render_layer` returns the files (name -> text) and writes nothing, reading
neither the process environment nor the packer on PATH (both are passed in).
Writing them, parsing them back and `packer validate` are everbake.packer_dir's.
Builds stage first and pass what staging found in the settings, so no rendered
file is patched afterwards.

Jinja shapes structure only, with [[ ]] / [% %] delimiters because Packer's own
Go templates use {{ }}. Values go to the JSON var file, so no value is ever
parsed as HCL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake import provision_env
from everbake.fingerprint import Fingerprints
from everbake.packer import supports_plugins
from everbake.providers import BuildSettings, Provider
from everbake.spec import ImageSpec
from everbake.templating import environment, render_template

VAR_FILE = "inputs.auto.pkrvars.json"
VERSIONS_FILE = "versions.pkr.hcl"


@dataclass(frozen=True)
class Rendered:
    """One Packer directory: a provider's layer of an image, and its files."""

    provider: Provider
    layer: str
    directory: Path
    values: dict[str, Any]
    sensitive: tuple[str, ...]  # variable names whose values come only from PKR_VAR_*
    files: Mapping[str, str] = field(default_factory=dict, compare=False)
    # Directories the writer makes besides ``directory`` (the manifest's, staging/).
    dirs: tuple[Path, ...] = ()


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
    return Rendered(provider, layer, directory, values, sensitive, files, dirs)


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
