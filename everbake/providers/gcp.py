"""Google Compute Engine: googlecompute source vars."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from everbake import naming
from everbake.fingerprint import Fingerprints
from everbake.providers.base import BuildSettings, Provider
from everbake.spec import ImageSpec


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

    def resource_fields(self, spec: ImageSpec, record: Mapping[str, Any]) -> dict[str, Any]:
        """GCE: project, zone, machine type (and its vCPUs), network, the image's self-link
        and minimum disk, and the scheduling a preemptible VM needs."""
        res = spec.resource.gcp
        image_project = str(record.get("project") or "")
        machine: dict[str, Any] = {"machine_type": res.machine_type}
        cores = self.vcpus(res.machine_type)
        if cores:
            machine["cores"] = cores
        network = {"network": res.network or spec.build.gcp.network}
        if spec.build.gcp.subnetwork:
            network["subnetwork"] = spec.build.gcp.subnetwork
        built = (record.get("spec_canonical") or {}).get("build", {}).get("gcp", {})
        name = record.get("image_name") or record.get("image")
        preemptible = spec.resource.preemptible
        return {
            "location": {"project": res.project or image_project, "zones": [res.zone]},
            "machine": machine,
            "network": network,
            "image": {
                "project": image_project,
                "self_link": f"{self.GCE_API}/projects/{image_project}/global/images/{name}",
                "min_disk_size_gb": int(built.get("disk_size_gb", spec.build.gcp.disk_size_gb)),
            },
            "scheduling": {
                # GCE: preemptible instances cannot restart automatically or live-migrate.
                "on_host_maintenance": "TERMINATE" if preemptible else "MIGRATE",
                "automatic_restart": not preemptible,
            },
        }

    # The Compute Engine v1 API root of image self-links.
    GCE_API = "https://www.googleapis.com/compute/v1"
    # Shared-core machine types' vCPUs (cloud.google.com/compute/docs/general-purpose-machines).
    _SHARED_CORE: ClassVar[dict[str, int]] = {
        "e2-micro": 2,
        "e2-small": 2,
        "e2-medium": 2,
        "f1-micro": 1,
        "g1-small": 1,
    }
    _VCPUS = re.compile(r"^(?:[a-z0-9]+-)?(?:custom|[a-z]+)-(\d+)(?:-|$)")

    @classmethod
    def vcpus(cls, machine_type: str) -> int | None:
        """vCPUs of a machine type (n2-standard-4 -> 4, n2-custom-6-8192 -> 6), or None."""
        if machine_type in cls._SHARED_CORE:
            return cls._SHARED_CORE[machine_type]
        found = cls._VCPUS.match(machine_type)
        return int(found.group(1)) if found else None
