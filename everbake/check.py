"""`invoke check`: what is installed and configured, each missing thing with its fix."""

from __future__ import annotations

import shutil
from collections.abc import Iterable

from everbake import packer
from everbake.errors import ToolError
from everbake.providers import CheckLine, get


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


def run_checks(providers: Iterable[str]) -> list[CheckLine]:
    lines = tool_checks()
    for name in providers:
        lines.extend(get(name).check())
    return lines


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
