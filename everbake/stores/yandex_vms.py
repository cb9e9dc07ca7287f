"""Yandex Cloud build VMs: what the watcher asks, the folder's default subnets, and
the leftovers `invoke clean-builds` removes (yandexcloud, imported lazily through
the image store it extends)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from everbake.stores.build_vms import BUILD_LABEL, Leftover, attempt_id
from everbake.stores.yandex import YandexImageStore

# The network Yandex Cloud makes in every new folder ("default", with one subnet
# per zone named default-<zone>: https://yandex.cloud/en/docs/vpc/concepts/network).
DEFAULT_NETWORK = "default"


class YandexBuildVms(YandexImageStore):
    """The build VMs of one folder; counts its API requests (for the benchmark)."""

    def __init__(self, folder_id: str, **kwargs: Any) -> None:
        super().__init__(folder_id, **kwargs)
        from yandex.cloud.compute.v1 import disk_service_pb2_grpc, instance_service_pb2_grpc
        from yandex.cloud.vpc.v1 import network_service_pb2_grpc

        self.requests = 0
        sdk = self._sdk
        discover = "discover the API endpoints"
        self._vm_client = self._call(
            discover, lambda: sdk.client(instance_service_pb2_grpc.InstanceServiceStub)
        )
        self._disk_client = self._call(
            discover, lambda: sdk.client(disk_service_pb2_grpc.DiskServiceStub)
        )
        self._network_client = self._call(
            discover, lambda: sdk.client(network_service_pb2_grpc.NetworkServiceStub)
        )

    # -- the watcher -------------------------------------------------------------

    def observe(self, zone: str, instance: str) -> str | None:
        """The instance's status name (RUNNING, STOPPING, STOPPED, DELETING...), None
        when the folder has no instance of that name in ``zone``."""
        from yandex.cloud.compute.v1 import instance_pb2, instance_service_pb2

        request = instance_service_pb2.ListInstancesRequest(
            folder_id=self.folder_id, filter=f'name = "{instance}"'
        )
        self.requests += 1
        found = self._call(
            f"look up the build VM {instance}",
            partial(self._vm_client.List, request, timeout=self._timeout),
        )
        for vm in found.instances:
            if vm.name == instance and vm.zone_id == zone:
                return str(instance_pb2.Instance.Status.Name(vm.status))
        return None

    def serial_output(self, zone: str, instance: str) -> str:
        """The VM's serial console (InstanceService.GetSerialPortOutput, port 1)."""
        from yandex.cloud.compute.v1 import instance_service_pb2

        vm = self._instance_id(zone, instance)
        if not vm:
            return ""
        request = instance_service_pb2.GetInstanceSerialPortOutputRequest(instance_id=vm, port=1)
        self.requests += 1
        found = self._call(
            f"read the serial console of {instance}",
            partial(self._vm_client.GetSerialPortOutput, request, timeout=self._timeout),
        )
        return str(found.contents)

    def remove_build_vm(self, zone: str, instance: str) -> None:
        """Delete the attempt's VM and its boot disk (what the builder's cleanup does)."""
        from yandex.cloud.compute.v1 import disk_service_pb2, instance_service_pb2

        vm = self._instance_id(zone, instance)
        if vm:
            what = f"delete the build VM {instance}"
            request = instance_service_pb2.DeleteInstanceRequest(instance_id=vm)
            self._wait(
                self._call(what, partial(self._vm_client.Delete, request, timeout=self._timeout)),
                what,
            )
        for disk in self._labelled_disks(instance):
            what = f"delete the disk {disk.name}"
            request = disk_service_pb2.DeleteDiskRequest(disk_id=disk.id)
            self._wait(
                self._call(what, partial(self._disk_client.Delete, request, timeout=self._timeout)),
                what,
            )

    def _instance_id(self, zone: str, instance: str) -> str:
        from yandex.cloud.compute.v1 import instance_service_pb2

        request = instance_service_pb2.ListInstancesRequest(
            folder_id=self.folder_id, filter=f'name = "{instance}"'
        )
        self.requests += 1
        found = self._call(
            f"look up the build VM {instance}",
            partial(self._vm_client.List, request, timeout=self._timeout),
        )
        return next((str(v.id) for v in found.instances if v.zone_id == zone), "")

    def left_behind(self, zone: str, instance: str) -> list[str]:
        out = []
        if self.observe(zone, instance) is not None:
            out.append(f"instance {instance} in {zone}")
        out.extend(f"disk {d.name} in {d.zone}" for d in self._labelled_disks(instance))
        return out

    # -- subnets -----------------------------------------------------------------

    def default_subnets(self) -> dict[str, str]:
        """zone -> subnet id of the folder's network named "default" ({} without one)."""
        from yandex.cloud.vpc.v1 import network_service_pb2

        request = network_service_pb2.ListNetworksRequest(
            folder_id=self.folder_id, filter=f'name = "{DEFAULT_NETWORK}"'
        )
        networks = self._call(
            "list the folder's networks",
            partial(self._network_client.List, request, timeout=self._timeout),
        ).networks
        out: dict[str, str] = {}
        for network in networks:
            subnets = network_service_pb2.ListNetworkSubnetsRequest(network_id=network.id)
            found = self._call(
                f"list the subnets of network {network.name}",
                partial(self._network_client.ListSubnets, subnets, timeout=self._timeout),
            )
            for subnet in found.subnets:
                out.setdefault(subnet.zone_id, subnet.id)
        return out

    # -- leftovers ---------------------------------------------------------------

    def leftovers(self, zones: Iterable[str], older_than: timedelta) -> list[Leftover]:
        """Instances and disks labelled everbake-build, older than ``older_than``."""
        from yandex.cloud.compute.v1 import instance_service_pb2

        cutoff = datetime.now(timezone.utc) - older_than
        wanted = set(zones)
        found: list[Leftover] = []
        request = instance_service_pb2.ListInstancesRequest(folder_id=self.folder_id)
        vms = self._call(
            "list the folder's instances",
            partial(self._vm_client.List, request, timeout=self._timeout),
        ).instances
        for vm in vms:
            attempt = dict(vm.labels).get(BUILD_LABEL, "")
            created = vm.created_at.ToDatetime(tzinfo=timezone.utc)
            if attempt and created < cutoff and (not wanted or vm.zone_id in wanted):
                found.append(Leftover("instance", vm.name, vm.zone_id, _stamp(created), attempt))
        for disk in self._labelled_disks():
            created = disk.created_at.ToDatetime(tzinfo=timezone.utc)
            if created < cutoff and (not wanted or disk.zone_id in wanted):
                found.append(
                    Leftover(
                        "disk", disk.name, disk.zone_id, _stamp(created), disk.labels[BUILD_LABEL]
                    )
                )
        return found

    def delete_leftover(self, leftover: Leftover) -> None:
        from yandex.cloud.compute.v1 import disk_service_pb2, instance_service_pb2

        what = f"delete {leftover.describe()}"
        if leftover.kind == "instance":
            vm = self._find(leftover)
            call: Any = partial(
                self._vm_client.Delete,
                instance_service_pb2.DeleteInstanceRequest(instance_id=vm),
                timeout=self._timeout,
            )
        else:
            disk = self._find(leftover)
            call = partial(
                self._disk_client.Delete,
                disk_service_pb2.DeleteDiskRequest(disk_id=disk),
                timeout=self._timeout,
            )
        self._wait(self._call(what, call, retry=False), what)

    def _find(self, leftover: Leftover) -> str:
        if leftover.kind == "disk":
            return next(d.id for d in self._labelled_disks() if d.name == leftover.name)
        from yandex.cloud.compute.v1 import instance_service_pb2

        request = instance_service_pb2.ListInstancesRequest(
            folder_id=self.folder_id, filter=f'name = "{leftover.name}"'
        )
        found = self._call(
            f"look up {leftover.name}",
            partial(self._vm_client.List, request, timeout=self._timeout),
        )
        return str(found.instances[0].id)

    def _labelled_disks(self, instance: str = "") -> list[Any]:
        from yandex.cloud.compute.v1 import disk_service_pb2

        request = disk_service_pb2.ListDisksRequest(folder_id=self.folder_id)
        self.requests += 1
        disks = self._call(
            "list the folder's disks",
            partial(self._disk_client.List, request, timeout=self._timeout),
        ).disks
        labelled = [d for d in disks if BUILD_LABEL in d.labels]
        if instance:
            attempt = attempt_id(instance)
            labelled = [d for d in labelled if d.labels[BUILD_LABEL] == attempt]
        return labelled


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")
