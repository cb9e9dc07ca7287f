"""Google Compute Engine: the googlecompute source, a project to build in, images
through google-cloud-compute, deprecation before deletion, and `packer build
-force` to replace an image of the same name."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from everbake import naming, packer, provision_env
from everbake.attempts import GCE_CREATION, SESSION_LOST, region_of
from everbake.check_line import CheckLine
from everbake.errors import EverbakeError
from everbake.providers.base import BuildSettings
from everbake.providers.cloud import BuildLayer, CloudProvider, Place, Sdk
from everbake.providers.gcp_checks import build_checks
from everbake.providers.swap import replace_by_swap
from everbake.retirement import Policy
from everbake.stores.gcp import gcp_credentials_hint
from everbake.stores.gcp_vms import GcpBuildVms

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
    # GCE's deletion also passes through STOPPING and TERMINATED (Packer's cleanup),
    # so only its own word counts: a zone operation "compute.instances.preempted"
    # for the VM (https://cloud.google.com/compute/docs/instances/preemptible
    # #detecting_if_an_instance_was_preempted), which GcpBuildVms.observe reports
    # as PREEMPTED.
    lost_statuses = frozenset({"PREEMPTED"})

    def location_in_spec(self, spec: ImageSpec) -> str:
        return spec.build.gcp.project

    def build_table(self, spec: ImageSpec) -> Any:
        return spec.build.gcp

    def credentials_hint(self, environ: Mapping[str, str]) -> CheckLine:
        return gcp_credentials_hint(dict(environ))

    def _open_store(self, location: str, environ: Mapping[str, str]) -> ImageStore:
        # The build-VM adapter is an image store too: --force swaps images with it.
        return self.open_build_vms(location, environ)

    def open_build_vms(self, location: str, environ: Mapping[str, str]) -> Any:
        return GcpBuildVms(location, endpoint=environ.get("EVERBAKE_GCE_ENDPOINT") or None)

    def login_user(self, spec: ImageSpec) -> str:
        # With OS Login the plugin logs in as the account's OS Login user, not
        # ssh_username (step_import_os_login_ssh_key.go): only the VM knows its name.
        return provision_env.SESSION_USER if spec.build.gcp.use_os_login else self.ssh_username

    def build_checks(
        self, location: str, specs: Sequence[ImageSpec], environ: Mapping[str, str]
    ) -> list[CheckLine]:
        try:
            vms = self.open_build_vms(location, environ)
        except EverbakeError as exc:
            return [CheckLine("gcp: build checks", False, str(exc).splitlines()[0])]
        return build_checks(location, vms, specs, self.vcpus, packer.detect_version_or_none())

    def subnet_for(self, spec: ImageSpec, zone: str, found: Mapping[str, str]) -> str:
        build = spec.build.gcp
        return build.subnetworks.get(region_of(zone), "") or build.subnetwork

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
        # Not `packer build -force`: it deletes the old image before making the new one.
        return replace_by_swap(self.name, store, existing, name, family, build)

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
        subnetwork = settings.subnet or self.subnet_for(spec, values["zone"], {})
        if subnetwork:
            values["subnetwork"] = subnetwork
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
