"""Google Compute Engine: the googlecompute source, a project to build in, images
through google-cloud-compute, deprecation before deletion, and `packer build
-force` to replace an image of the same name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from everbake import naming, packer
from everbake.attempts import GCE_CREATION, SESSION_LOST
from everbake.check_line import CheckLine
from everbake.providers.base import BuildSettings
from everbake.providers.cloud import BuildLayer, CloudProvider, Place, Sdk
from everbake.retirement import Policy
from everbake.stores.gcp import GcpImageStore, gcp_credentials_hint

if TYPE_CHECKING:
    from everbake.fingerprint import Fingerprints
    from everbake.spec import ImageSpec
    from everbake.stores import CloudImage, ImageStore


class Gcp(CloudProvider):
    name = "gcp"
    ssh_username = "packer"
    needs_pinned_agent = True
    source_type = "googlecompute"
    plugin = packer.plugin(source_type)
    source_template = "gcp/source.pkr.hcl.j2"
    place = Place(
        "project",
        "project",
        "build.gcp.project",
        ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),
        "export GOOGLE_CLOUD_PROJECT=<project>  (or set build.gcp.project in the image spec)",
        "project_id",
    )
    sdk = Sdk("google.cloud.compute_v1", "pip install 'everbake[gcp]'  (google-cloud-compute)")
    lost_vm_signals = (*GCE_CREATION, *SESSION_LOST)

    def location_in_spec(self, spec: ImageSpec) -> str:
        return spec.build.gcp.project

    def build_table(self, spec: ImageSpec) -> Any:
        return spec.build.gcp

    def credentials_hint(self, environ: Mapping[str, str]) -> CheckLine:
        return gcp_credentials_hint(dict(environ))

    def _open_store(self, location: str, environ: Mapping[str, str]) -> ImageStore:
        return GcpImageStore(location, endpoint=environ.get("EVERBAKE_GCE_ENDPOINT") or None)

    def retirement(self) -> Policy:
        return Policy(deprecate_first=True, delete_after_days=30.0)

    def artifact_id(self, image: CloudImage) -> str:
        return image.name  # googlecompute's artifact id is the image name

    def replace(
        self,
        store: ImageStore,
        existing: CloudImage,
        name: str,
        family: str,
        build: BuildLayer,
    ) -> tuple[Any, dict[str, Any], Any, CloudImage | None]:
        # `packer build -force` deletes the old image only once the new one is made.
        image, entry, attempt = build(packer_force=True)
        return image, entry, attempt, existing

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
        environ: Mapping[str, str],
    ) -> dict[str, Any]:
        build = spec.build.gcp
        values = self.cloud_vars(spec, fps, layer, paths, settings, environ)
        values["machine_type"] = build.machine_type
        values["on_host_maintenance"] = "TERMINATE" if values["preemptible"] else "MIGRATE"
        # Sent only as given: a subnetwork of a custom VPC must not meet "default".
        if build.network:
            values["network"] = build.network
        if build.subnetwork:
            values["subnetwork"] = build.subnetwork
        # Metadata SSH keys, not OS Login (ignored where a project enforces it).
        values["use_os_login"] = build.use_os_login
        if build.service_account:
            values["service_account_email"] = build.service_account
            if build.scopes:
                values["scopes"] = list(build.scopes)
        else:
            values["disable_default_service_account"] = True
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
        """GCE: project, zone, machine type (and its vCPUs), network, service account and
        scopes, the image's self-link and minimum disk, and the scheduling a preemptible
        VM needs."""
        res = spec.resource.gcp
        image_project = str(record.get("project") or "")
        machine: dict[str, Any] = {"machine_type": res.machine_type}
        cores = self.vcpus(res.machine_type)
        if cores:
            machine["cores"] = cores
        # Neither table names one: GCE's own default network, "default".
        network = {"network": res.network or spec.build.gcp.network or "default"}
        if spec.build.gcp.subnetwork:
            network["subnetwork"] = spec.build.gcp.subnetwork
        built = (record.get("spec_canonical") or {}).get("build", {}).get("gcp", {})
        name = record.get("image_name") or record.get("image")
        preemptible = spec.resource.preemptible
        # The VMs' service account by its email (never a key), and its OAuth scopes.
        account: dict[str, Any] = {}
        if res.service_account:
            account["service_account"] = res.service_account
            if res.scopes:
                account["scopes"] = list(res.scopes)
        return {
            **account,
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
