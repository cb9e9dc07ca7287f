"""Google Compute Engine: googlecompute source vars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everbake import naming
from everbake.fingerprint import Fingerprints
from everbake.providers.base import BuildSettings, Provider
from everbake.spec import ImageSpec


class Gcp(Provider):
    name = "gcp"
    layers = ("base", "image")
    ssh_username = "packer"
    needs_pinned_agent = True

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
    ) -> dict[str, Any]:
        build = spec.build.gcp
        values = self.cloud_vars(spec, fps, layer, paths, settings, build)
        values["machine_type"] = build.machine_type
        values["on_host_maintenance"] = "TERMINATE" if values["preemptible"] else "MIGRATE"
        values["network"] = build.network
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
        return values
