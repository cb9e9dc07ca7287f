"""Compute Engine build VMs: what the watcher asks, what `invoke check` tests, and
the leftovers `invoke clean-builds` removes (google-cloud-compute, imported lazily
through the image store it extends)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import cached_property, partial
from typing import Any

from everbake.errors import CloudError
from everbake.stores import CloudImage, parse_time
from everbake.stores.build_vms import BUILD_LABEL, Leftover, attempt_id
from everbake.stores.gcp import GcpImageStore

# googlecompute names the boot disk after the instance (DiskName defaults to
# InstanceName, packer-plugin-googlecompute builder/googlecompute/config.go) and
# does not label it: our instance names are how its disks are known.
# Project-level permissions a build needs (googlecompute's docs ask for
# roles/compute.instanceAdmin.v1 and roles/iam.serviceAccountUser; the watcher
# reads zone operations).
BUILD_PERMISSIONS = (
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.setMetadata",
    "compute.disks.create",
    "compute.disks.delete",
    "compute.images.create",
    "compute.images.delete",
    "compute.images.get",
    "compute.images.useReadOnly",
    "compute.zoneOperations.list",
    "iam.serviceAccounts.actAs",
)
CRM_API = "https://cloudresourcemanager.googleapis.com"


class GcpBuildVms(GcpImageStore):
    """The build VMs of one project; counts its API requests (for the benchmark)."""

    def __init__(self, project: str, credentials: Any = None, endpoint: str | None = None):
        super().__init__(project, credentials, endpoint, timeout=30.0)
        self.endpoint = endpoint
        self.requests = 0

    # Made when first used: each client reads the credentials on its own (a key
    # file is parsed per client), and an up-to-date build needs none of them.
    @cached_property
    def _instances(self) -> Any:
        return self._compute.InstancesClient(
            credentials=self._credentials, client_options=self._options
        )

    @cached_property
    def _zone_ops(self) -> Any:
        return self._compute.ZoneOperationsClient(
            credentials=self._credentials, client_options=self._options
        )

    @cached_property
    def _disks(self) -> Any:
        return self._compute.DisksClient(
            credentials=self._credentials, client_options=self._options
        )

    @cached_property
    def _regions(self) -> Any:
        return self._compute.RegionsClient(
            credentials=self._credentials, client_options=self._options
        )

    # -- the watcher -------------------------------------------------------------

    def observe(self, zone: str, instance: str) -> str | None:
        """The instance's status, PREEMPTED once the zone's operations say GCE
        preempted it, None when GCE does not know it. A running VM costs one request."""
        status = self.instance_status(zone, instance)
        if status == "RUNNING":
            return status
        return "PREEMPTED" if self.preempted(zone, instance) else status

    def instance_status(self, zone: str, instance: str) -> str | None:
        self.requests += 1
        found = self._call(
            f"get the build VM {instance} in {zone}",
            lambda: self._instances.get(
                project=self.project, zone=zone, instance=instance, timeout=self._timeout
            ),
            not_found=None,
        )
        return None if found is None else str(found.status)

    def preempted(self, zone: str, instance: str) -> bool:
        self.requests += 1
        return self.build_vm_lost(zone, instance)

    def left_behind(self, zone: str, instance: str) -> list[str]:
        """What of the attempt's VM is still there after packer ended (its disk too)."""
        out = []
        if self.instance_status(zone, instance) is not None:
            out.append(f"instance {instance} in {zone}")
        self.requests += 1
        disk = self._call(
            f"get the disk {instance} in {zone}",
            lambda: self._disks.get(
                project=self.project, zone=zone, disk=instance, timeout=self._timeout
            ),
            not_found=None,
        )
        if disk is not None:
            out.append(f"disk {instance} in {zone}")
        return out

    # -- replacing an image -------------------------------------------------------

    def rename(self, image: CloudImage, name: str) -> CloudImage:
        """GCE images cannot be renamed: copy ``image`` to ``name`` (images.insert
        with sourceImage, family, labels and description kept), then delete it."""
        source = self._call(
            f"get image {image.name}",
            lambda: self._images.get(project=self.project, image=image.name, timeout=self._timeout),
        )
        copy = self._compute.Image(
            name=name,
            source_image=f"projects/{self.project}/global/images/{image.name}",
            family=source.family,
            labels=dict(source.labels),
            description=source.description,
        )
        self._mutate(
            f"copy image {image.name} to {name}",
            lambda: self._images.insert_unary(
                project=self.project, image_resource=copy, timeout=self._timeout
            ),
        )
        self.delete(image)
        found = [i for i in self.list_family(source.family) if i.name == name]
        if not found:
            raise CloudError(f"gcp: image {name} is missing right after copying {image.name}")
        return found[0]

    # -- leftovers ---------------------------------------------------------------

    def leftovers(self, zones: Iterable[str], older_than: timedelta) -> list[Leftover]:
        """Build VMs (labelled) and their disks (named) older than ``older_than``."""
        cutoff = datetime.now(timezone.utc) - older_than
        found: list[Leftover] = []
        for zone in sorted(set(zones)):
            request = self._compute.ListInstancesRequest(
                project=self.project, zone=zone, filter=f"labels.{BUILD_LABEL}:*"
            )
            for vm in self._call(
                f"list the build VMs in {zone}",
                partial(_listed, self._instances, request, self._timeout),
            ):
                attempt = dict(vm.labels).get(BUILD_LABEL, "")
                if attempt and parse_time(vm.creation_timestamp) < cutoff:
                    found.append(
                        Leftover("instance", vm.name, zone, vm.creation_timestamp, attempt)
                    )
            disks = self._compute.ListDisksRequest(project=self.project, zone=zone)
            for disk in self._call(
                f"list the disks in {zone}",
                partial(_listed, self._disks, disks, self._timeout),
            ):
                attempt = attempt_id(disk.name)
                if attempt and parse_time(disk.creation_timestamp) < cutoff:
                    found.append(
                        Leftover("disk", disk.name, zone, disk.creation_timestamp, attempt)
                    )
        return found

    def delete_leftover(self, leftover: Leftover) -> None:
        if leftover.kind == "instance":
            start = lambda: self._instances.delete_unary(  # noqa: E731
                project=self.project,
                zone=leftover.zone,
                instance=leftover.name,
                timeout=self._timeout,
            )
        else:
            start = lambda: self._disks.delete_unary(  # noqa: E731
                project=self.project, zone=leftover.zone, disk=leftover.name, timeout=self._timeout
            )
        operation = self._call(f"delete {leftover.describe()}", start)
        done = self._call(
            f"wait for the deletion of {leftover.describe()}",
            lambda: self._zone_ops.wait(
                project=self.project,
                zone=leftover.zone,
                operation=operation.name,
                timeout=self._timeout,
            ),
        )
        errors = list(done.error.errors) if "error" in done else []
        if errors:
            message = "; ".join(f"{e.code}: {e.message}" for e in errors)
            raise CloudError(f"gcp: delete {leftover.describe()} failed: {message}")

    # -- checks ------------------------------------------------------------------

    def region_quotas(self, region: str) -> dict[str, tuple[float, float]]:
        """metric -> (limit, usage) of ``region`` (regions.get)."""
        found = self._call(
            f"read the quotas of region {region}",
            lambda: self._regions.get(project=self.project, region=region, timeout=self._timeout),
        )
        return {str(q.metric): (float(q.limit), float(q.usage)) for q in found.quotas}

    def granted(self, permissions: Iterable[str]) -> set[str]:
        """Which of ``permissions`` the caller holds on the project (Cloud Resource
        Manager projects.testIamPermissions). Raises the API's error as it is."""
        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(self._credentials or _default_credentials())
        session.trust_env = False if self.endpoint else session.trust_env
        root = self.endpoint or CRM_API
        response = session.post(
            f"{root}/v1/projects/{self.project}:testIamPermissions",
            json={"permissions": list(permissions)},
            timeout=self._timeout,
        )
        if response.status_code != 200:
            raise PermissionCheckError(response.status_code, _api_message(response))
        return set(response.json().get("permissions", []))


class PermissionCheckError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def _api_message(response: Any) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return response.text[:200]
    reasons = [e.get("reason", "") for e in error.get("errors", [])]
    return f"{error.get('message', '')} ({', '.join(r for r in reasons if r)})"


def _listed(client: Any, request: Any, timeout: float) -> list[Any]:
    return list(client.list(request=request, timeout=timeout))


def _default_credentials() -> Any:
    import google.auth

    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    credentials, _project = google.auth.default(scopes=scopes)
    return credentials
