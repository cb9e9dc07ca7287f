"""The local provider: Packer's null source drives everbake.localbuild (mmdebstrap + chroot)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from everbake.fingerprint import Fingerprints
from everbake.providers.base import BuildSettings, CheckLine, Provider
from everbake.spec import ImageSpec


class Local(Provider):
    name = "local"
    layers = ("image",)  # one Packer run; the localbuild steps cache the base layer

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
    ) -> dict[str, Any]:
        return {
            **self.common_vars(spec, fps, "image"),
            "base_fingerprint": fps.base,
            "python": sys.executable,
            "repo_root": str(spec.repo_root),
            "plan_file": str(paths["plan_file"]),
            "manifest_path": str(paths["manifest"]),
        }

    def check(self) -> list[CheckLine]:
        lines = []
        for tool, fix in (
            ("mmdebstrap", "apt-get install -y mmdebstrap"),
            ("zstd", "apt-get install -y zstd"),
        ):
            found = shutil.which(tool)
            lines.append(CheckLine(f"local: {tool}", bool(found), found or "not found", fix))
        return lines
