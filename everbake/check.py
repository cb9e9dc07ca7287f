"""`invoke check`: what is installed and configured, each missing thing with its fix.

Per cloud provider the checks go from cheap to expensive and stop at the first
step that cannot pass: the Python SDK and the Packer builder are present ->
credentials are present (no network) -> the project/folder is known -> one real
API call (list the images of each spec's family).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from everbake import packer
from everbake.errors import EverbakeError, ToolError
from everbake.location import PLACES, from_env, location_of
from everbake.providers import CheckLine, get
from everbake.spec import ImageSpec
from everbake.stores.factory import credentials_hint

SDKS = {
    "gcp": ("google.cloud.compute_v1", "pip install 'everbake[gcp]'  (google-cloud-compute)"),
    "yandex": ("yandexcloud", "pip install 'everbake[yandex]'  (yandexcloud)"),
}
YANDEX_PACKER_FIX = (
    "install Packer >= 1.7 (https://developer.hashicorp.com/packer/install); "
    "build-image runs 'packer init' for the yandex plugin"
)


def tool_checks() -> list[CheckLine]:
    lines = []
    try:
        version = packer.detect_version()
    except ToolError as exc:
        lines.append(CheckLine("packer", False, str(exc).split(":")[0], packer.INSTALL_FIX))
    else:
        text = ".".join(map(str, version))
        note = "" if packer.supports_plugins(version) else " (< 1.7: no yandex builder, no init)"
        lines.append(CheckLine("packer", True, f"{shutil.which('packer')} {text}{note}"))
    return lines


def run_checks(
    providers: Iterable[str],
    specs: Iterable[ImageSpec] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[CheckLine]:
    """Tools, then each provider's checks; ``specs`` default to every image in images/."""
    env = os.environ if env is None else env
    lines = tool_checks()
    names = list(providers)
    if any(name != "local" for name in names) and specs is None:
        specs = _all_specs()
    for name in names:
        if name == "local":
            lines.extend(get(name).check())
        else:
            lines.extend(cloud_checks(name, list(specs or []), env))
    return lines


def cloud_checks(provider: str, specs: list[ImageSpec], env: Mapping[str, str]) -> list[CheckLine]:
    """Cheap to expensive; a step that fails leaves out the steps that need it."""
    lines = []
    module, fix = SDKS[provider]
    sdk = _importable(module)
    lines.append(
        CheckLine(f"{provider}: sdk", sdk, module if sdk else f"{module} is not installed", fix)
    )
    if provider == "yandex":
        version = packer.detect_version_or_none()
        if version is not None:
            ok = packer.supports_plugins(version)
            shown = ".".join(map(str, version))
            detail = f"packer {shown}" + ("" if ok else " has no yandex builder")
            lines.append(CheckLine("yandex: packer builder", ok, detail, YANDEX_PACKER_FIX))
    hint = credentials_hint(provider, env)
    lines.append(CheckLine(f"{provider}: credentials", hint.ok, hint.detail, hint.fix or ""))
    locations = _locations(provider, specs, env)
    place = PLACES[provider]
    if locations:
        shown = ", ".join(sorted(locations))
        lines.append(CheckLine(f"{provider}: {place.noun}", True, shown))
    else:
        lines.append(
            CheckLine(
                f"{provider}: {place.noun}",
                False,
                f"{place.variables[0]} is not set (nor {place.setting})",
                place.fix,
            )
        )
    if sdk and hint.ok and locations:
        lines.extend(_api_checks(provider, locations, env))
    return lines


def _api_checks(
    provider: str, locations: dict[str, list[str]], env: Mapping[str, str]
) -> list[CheckLine]:
    """One real call per location and family: list the family's images."""
    from everbake.stores.factory import open_store

    lines = []
    for location, families in sorted(locations.items()):
        try:
            store = open_store(provider, location, env)
            counts = [f"{len(store.list_family(f))} in {f}" for f in families]
        except EverbakeError as exc:
            lines.append(CheckLine(f"{provider}: api", False, str(exc).splitlines()[0]))
            continue
        detail = f"{location}: images " + ", ".join(counts) if counts else location
        lines.append(CheckLine(f"{provider}: api", True, detail))
    return lines


def _locations(
    provider: str, specs: list[ImageSpec], env: Mapping[str, str]
) -> dict[str, list[str]]:
    """Project/folder -> the families of the specs that build there."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        try:
            location = location_of(spec, provider, env)
        except EverbakeError:
            continue
        out.setdefault(location, [])
        if spec.family not in out[location]:
            out[location].append(spec.family)
    if not specs:
        found = from_env(provider, env)
        if found:
            return {found: []}
    return out


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _all_specs(images_dir: Path | None = None) -> list[ImageSpec]:
    """Every image spec that loads; `invoke validate` reports the broken ones."""
    from everbake.spec import list_images, load_spec

    specs = []
    for name in list_images(images_dir):
        try:
            specs.append(load_spec(name, images_dir))
        except EverbakeError:
            continue
    return specs


def format_lines(lines: list[CheckLine]) -> str:
    width = max((len(line.what) for line in lines), default=0)
    out = []
    for line in lines:
        mark = "ok     " if line.ok else "MISSING"
        text = f"{mark} {line.what.ljust(width)}  {line.detail}"
        if not line.ok and line.fix:
            text += f"\n        {' ' * width}  fix: {line.fix}"
        out.append(text)
    return "\n".join(out)
