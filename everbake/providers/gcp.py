"""Google Compute Engine: googlecompute source vars and offline credential checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from everbake import naming
from everbake.fingerprint import Fingerprints
from everbake.location import find
from everbake.providers.base import BuildSettings, CheckLine, Provider, location_line
from everbake.spec import ImageSpec

ADC_PATH = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
CREDENTIAL_HINT = (
    "gcloud auth application-default login  (or export GOOGLE_APPLICATION_CREDENTIALS=<key.json>)"
)


def project(spec: ImageSpec, settings: BuildSettings) -> str:
    """Project from the build settings, the spec, or the environment ('' when unknown)."""
    return settings.project or find(spec, "gcp")


class Gcp(Provider):
    name = "gcp"
    layers = ("base", "image")

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
    ) -> dict[str, Any]:
        build = spec.build.gcp
        preemptible = build.preemptible if settings.preemptible is None else settings.preemptible
        values: dict[str, Any] = {
            **self.common_vars(spec, fps, layer),
            "zone": settings.zone or build.zones[0],
            "machine_type": build.machine_type,
            "preemptible": preemptible,
            "on_host_maintenance": "TERMINATE" if preemptible else "MIGRATE",
            "disk_size_gb": build.disk_size_gb,
            "network": build.network,
            "build_labels": {
                naming.SPEC_LABEL: naming.label_value(spec.name),
                naming.LAYER_LABEL: layer,
            },
            "staging_dir": str(paths["staging"]),
            "scripts": [str(p) for p in paths_list(paths, "scripts")],
            "manifest_path": str(paths["manifest"]),
        }
        if build.subnetwork:
            values["subnetwork"] = build.subnetwork
        if layer == "image":
            values["source_image"] = naming.image_name(spec, fps, "base")
        elif spec.base.gcp.image:
            values["source_image"] = spec.base.gcp.image
            values["source_image_project_ids"] = [spec.base.gcp.image_project or "debian-cloud"]
        else:
            values["source_image_family"] = spec.base.gcp.image_family
            values["source_image_project_ids"] = [spec.base.gcp.image_project]
        found = project(spec, settings)
        if found:
            values["project_id"] = found
        return values

    def check(self) -> list[CheckLine]:
        lines = []
        key = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
        if key:
            ok, detail = _key_file(Path(key))
            lines.append(CheckLine("gcp: credentials", ok, detail, CREDENTIAL_HINT))
        elif ADC_PATH.is_file():
            lines.append(CheckLine("gcp: credentials", True, f"application default ({ADC_PATH})"))
        else:
            lines.append(CheckLine("gcp: credentials", False, "none found", CREDENTIAL_HINT))
        lines.append(location_line("gcp"))
        return lines


def _key_file(path: Path) -> tuple[bool, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return False, f"GOOGLE_APPLICATION_CREDENTIALS={path} is unreadable ({exc})"
    kind = data.get("type", "?") if isinstance(data, dict) else "?"
    return True, f"GOOGLE_APPLICATION_CREDENTIALS ({kind})"


def paths_list(paths: dict[str, Any], key: str) -> list[Path]:
    value = paths.get(key, [])
    return list(value) if isinstance(value, list | tuple) else []
