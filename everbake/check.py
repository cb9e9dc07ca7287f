"""`invoke check`: what is installed and configured, each missing thing with its fix.

Packer first, then each provider's own checks (`Provider.check`): for a cloud
they go from cheap to expensive and stop at the first step that cannot pass
(SDK and Packer builder -> credentials -> project/folder -> one API call).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping

from everbake import packer
from everbake.check_line import CheckLine
from everbake.errors import SpecError, ToolError
from everbake.providers import Provider
from everbake.settings import ALL, Settings
from everbake.spec import ImageSpec


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
    providers: Iterable[Provider],
    specs: Iterable[ImageSpec] | None = None,
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> list[CheckLine]:
    """Tools, then each provider's checks; ``specs`` default to every image in images/."""
    env = os.environ if env is None else env
    lines = tool_checks()
    chosen = list(providers)
    if specs is None and any(p.needs_specs_to_check for p in chosen):
        specs, line = spec_check(settings or Settings())
        lines.append(line)
    for provider in chosen:
        lines.extend(provider.check(list(specs or []), env))
    return lines


def spec_check(settings: Settings) -> tuple[list[ImageSpec], CheckLine]:
    """Every image spec, loaded as build-image loads them (a broken one is not
    skipped: it fails this line, and the clouds are checked without the specs)."""
    where = settings.images_dir or "images/"
    try:
        specs = settings.load_specs([ALL])
    except SpecError as exc:
        shown = f"{len(exc.problems)} problem(s), first: {exc.problems[0]}"
        return [], CheckLine("image specs", False, shown, "invoke validate lists every problem")
    return specs, CheckLine("image specs", True, f"{len(specs)} in {where}")


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
