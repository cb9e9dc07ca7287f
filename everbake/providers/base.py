"""What every provider offers the build side: template variables and offline checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from everbake import naming
from everbake.fingerprint import Fingerprints
from everbake.location import PLACES, find
from everbake.spec import ImageSpec


@dataclass(frozen=True)
class CheckLine:
    """One line of `invoke check`: what, whether it is fine, and the fix if not."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class BuildSettings:
    """Build-VM-only choices made at build time (they never change a fingerprint).

    ``zone``/``preemptible`` default to the spec (first zone, spec's preemptible);
    the build code passes others when falling back after a preemption.
    """

    zone: str | None = None
    preemptible: bool | None = None
    project: str | None = None  # GCP project or Yandex folder id
    # A temporary name for the new image while it replaces one of the same
    # fingerprint (Yandex --force: names are unique, so build first, swap after).
    image_name: str | None = None
    # The build VM's name, unique per attempt, so a lost VM can be looked up.
    instance_name: str | None = None


class Provider:
    name: ClassVar[str]
    # Layers rendered as separate Packer directories (clouds: base and image).
    layers: ClassVar[tuple[str, ...]]
    # The user Packer logs in as on a cloud build VM (hygiene removes it).
    ssh_username: ClassVar[str] = ""
    # Builds refuse a spec whose [agent] sha256 is unset (clouds: an image
    # published to many VMs must not bake whatever a moving ref holds today).
    needs_pinned_agent: ClassVar[bool] = False

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
    ) -> dict[str, Any]:
        """Values for inputs.auto.pkrvars.json (never a secret value)."""
        raise NotImplementedError

    def check(self) -> list[CheckLine]:
        """Offline checks of the local tools; the clouds' checks (SDK, credentials,
        project/folder, one API call) are everbake.check.cloud_checks."""
        return []

    def common_vars(self, spec: ImageSpec, fps: Fingerprints, layer: str) -> dict[str, Any]:
        return {
            "spec_name": spec.name,
            "layer": layer,
            "fingerprint": fps.of(layer),
            "image_name": naming.image_name(spec, fps, layer),
            "image_family": naming.family(spec, layer),
            "image_description": naming.description(spec, fps, layer),
            "image_labels": naming.labels(spec, fps, layer),
        }

    def cloud_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
        build: Any,
    ) -> dict[str, Any]:
        """What both clouds set alike; ``build`` is the spec's build.<cloud> table."""
        common = self.common_vars(spec, fps, layer)
        if settings.image_name:
            common["image_name"] = settings.image_name
        if settings.instance_name:
            common["instance_name"] = settings.instance_name
        # The project/folder: the build settings', the spec's, or the environment's.
        place = settings.project or find(spec, self.name)
        if place:
            common[PLACES[self.name].packer_var] = place
        return {
            **common,
            "zone": settings.zone or build.zones[0],
            "preemptible": build.preemptible
            if settings.preemptible is None
            else settings.preemptible,
            "disk_size_gb": build.disk_size_gb,
            "build_labels": {
                naming.SPEC_LABEL: naming.label_value(spec.name),
                naming.LAYER_LABEL: layer,
            },
            "ssh_username": self.ssh_username,
            "staging_dir": str(paths["staging"]),
            "scripts": [str(p) for p in _paths_list(paths, "scripts")],
            "manifest_path": str(paths["manifest"]),
        }


def _paths_list(paths: dict[str, Any], key: str) -> list[Path]:
    value = paths.get(key, [])
    return list(value) if isinstance(value, list | tuple) else []
