"""A Yandex Cloud gRPC fake on 127.0.0.1 over TLS (a throwaway certificate).

It serves what yandexcloud calls: endpoint discovery (every service points back
here), IamTokenService.Create (OAuth token or service-account JWT -> IAM token),
ImageService Get/GetLatestByFamily/List/Create/Delete, InstanceService
Create/List/Delete (build VMs, also seeded with ``add_instance``; a preemptible one
in a zone of ``preempt_zones`` is stopped after ``preempt_after`` seconds, as
Yandex stops preemptible VMs), DiskService Create/List/Delete, NetworkService
List/ListSubnets (seeded with ``add_network``) and OperationService.Get. Every
call except discovery and token exchange must carry ``Bearer <iam_token>``.
Operations come back not done and are done on the first Get, so a client must
really wait; ``fail(code, method)`` injects gRPC errors.

Error statuses are the gRPC codes of Yandex's API error model
(https://yandex.cloud/en/docs/api-design-guide/concepts/errors: NOT_FOUND,
ALREADY_EXISTS, INVALID_ARGUMENT, UNAUTHENTICATED); the message texts beside
them are marked ``# guess:`` where no public source quotes them.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from yandex.cloud.compute.v1 import (
    disk_pb2,
    disk_service_pb2,
    disk_service_pb2_grpc,
    image_pb2,
    image_service_pb2,
    image_service_pb2_grpc,
    instance_pb2,
    instance_service_pb2,
    instance_service_pb2_grpc,
)
from yandex.cloud.endpoint import (
    api_endpoint_pb2,
    api_endpoint_service_pb2,
    api_endpoint_service_pb2_grpc,
)
from yandex.cloud.iam.v1 import iam_token_service_pb2, iam_token_service_pb2_grpc
from yandex.cloud.operation import operation_pb2, operation_service_pb2_grpc
from yandex.cloud.vpc.v1 import (
    network_pb2,
    network_service_pb2,
    network_service_pb2_grpc,
    subnet_pb2,
    subnet_service_pb2,
    subnet_service_pb2_grpc,
)

from tests.fakes.tls import localhost_certificate

SERVICES = ("compute", "operation", "iam", "endpoint", "resource-manager", "vpc")
_NAME_FILTER = re.compile(r'^\s*name\s*=\s*"([^"]*)"\s*$')


@dataclass
class Failure:
    code: grpc.StatusCode
    method: str
    remaining: int
    message: str


class FakeYandex:
    """``with FakeYandex() as yc:`` then ``YandexImageStore(..., endpoint=yc.endpoint,
    root_certificates=yc.root_certificates, token=yc.iam_token)``."""

    def __init__(self, iam_token: str = "t1.fake-iam-token") -> None:
        self.iam_token = iam_token
        self.images: dict[str, image_pb2.Image] = {}
        self.instances: dict[str, instance_pb2.Instance] = {}
        self.disks: dict[str, disk_pb2.Disk] = {}
        self.networks: dict[str, network_pb2.Network] = {}
        self.subnets: dict[str, subnet_pb2.Subnet] = {}
        # Zones where a preemptible VM is stopped ``preempt_after`` seconds after
        # it is created; the subnet each created VM was given (name -> subnet id).
        self.preempt_zones: set[str] = set()
        self.preempt_after = 0.3
        self.vm_subnets: dict[str, str] = {}
        self.statuses: dict[str, list[str]] = {}  # instance name -> statuses it went through
        self._preempt_at: dict[str, float] = {}
        self.operations: dict[str, operation_pb2.Operation] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []  # method, metadata
        self.failures: list[Failure] = []
        self.operation_error: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        cert = localhost_certificate()
        self.root_certificates = cert.cert_pem
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        creds = grpc.ssl_server_credentials([(cert.key_pem, cert.cert_pem)])
        self.port = self._server.add_secure_port("127.0.0.1:0", creds)
        api_endpoint_service_pb2_grpc.add_ApiEndpointServiceServicer_to_server(
            _Endpoints(self), self._server
        )
        iam_token_service_pb2_grpc.add_IamTokenServiceServicer_to_server(_Iam(self), self._server)
        image_service_pb2_grpc.add_ImageServiceServicer_to_server(_Images(self), self._server)
        instance_service_pb2_grpc.add_InstanceServiceServicer_to_server(
            _Instances(self), self._server
        )
        operation_service_pb2_grpc.add_OperationServiceServicer_to_server(
            _Operations(self), self._server
        )
        disk_service_pb2_grpc.add_DiskServiceServicer_to_server(_Disks(self), self._server)
        network_service_pb2_grpc.add_NetworkServiceServicer_to_server(_Networks(self), self._server)
        subnet_service_pb2_grpc.add_SubnetServiceServicer_to_server(_Subnets(self), self._server)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_env(self, folder: Path, folder_id: str = "") -> dict[str, str]:
        """What a process talking to this fake needs: the token, the endpoint and the
        fake's CA (written into ``folder``); YC_FOLDER_ID too when ``folder_id`` is given."""
        ca = folder / "yc-ca.pem"
        ca.write_bytes(self.root_certificates)
        env = {
            "YC_TOKEN": self.iam_token,
            "EVERBAKE_YANDEX_ENDPOINT": self.endpoint,
            "EVERBAKE_YANDEX_CA_FILE": str(ca),
        }
        if folder_id:
            env["YC_FOLDER_ID"] = folder_id
        return env

    def __enter__(self) -> FakeYandex:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)

    # -- seeding and inspection --------------------------------------------

    def add_image(
        self,
        folder_id: str,
        name: str,
        family: str = "",
        labels: dict[str, str] | None = None,
        created: datetime | None = None,
        status: int = image_pb2.Image.READY,
    ) -> image_pb2.Image:
        stamp = Timestamp()
        stamp.FromDatetime((created or datetime.now(timezone.utc)).astimezone(timezone.utc))
        with self._lock:
            image = image_pb2.Image(
                id=f"fd8{next(self._ids):017d}",
                folder_id=folder_id,
                created_at=stamp,
                name=name,
                family=family,
                labels=labels or {},
                status=status,
            )
            self.images[image.id] = image
        return image

    def add_instance(
        self, folder_id: str, name: str, zone: str, status: int = instance_pb2.Instance.RUNNING
    ) -> instance_pb2.Instance:
        """A VM as Compute would list it (e.g. STOPPED: how Yandex ends a preemptible VM)."""
        with self._lock:
            instance = instance_pb2.Instance(
                id=f"fhm{next(self._ids):017d}",
                folder_id=folder_id,
                name=name,
                zone_id=zone,
                status=status,
            )
            self.instances[instance.id] = instance
        return instance

    def add_network(self, folder_id: str, name: str, subnets: dict[str, str]) -> None:
        """A network with one subnet per zone (zone -> subnet id)."""
        with self._lock:
            network = network_pb2.Network(
                id=f"enp{next(self._ids):017d}", folder_id=folder_id, name=name
            )
            self.networks[network.id] = network
            for zone, subnet_id in subnets.items():
                self.subnets[subnet_id] = subnet_pb2.Subnet(
                    id=subnet_id,
                    folder_id=folder_id,
                    name=f"{name}-{zone}",
                    network_id=network.id,
                    zone_id=zone,
                )

    def add_disk(
        self, folder_id: str, name: str, zone: str, labels: dict[str, str], created: datetime
    ) -> disk_pb2.Disk:
        stamp = Timestamp()
        stamp.FromDatetime(created.astimezone(timezone.utc))
        with self._lock:
            disk = disk_pb2.Disk(
                id=f"fhm{next(self._ids):017d}",
                folder_id=folder_id,
                name=name,
                zone_id=zone,
                labels=labels,
                created_at=stamp,
                status=disk_pb2.Disk.READY,
            )
            self.disks[disk.id] = disk
        return disk

    def advance(self) -> None:
        """Stop the preemptible VMs whose time has come: STOPPING, then STOPPED."""
        now = time.monotonic()
        with self._lock:
            for vm in self.instances.values():
                due = self._preempt_at.get(vm.id)
                if due is None or now < due:
                    continue
                if vm.status == instance_pb2.Instance.RUNNING:
                    self._set_status(vm, instance_pb2.Instance.STOPPING)
                elif vm.status == instance_pb2.Instance.STOPPING and now >= due + 0.2:
                    self._set_status(vm, instance_pb2.Instance.STOPPED)
                    del self._preempt_at[vm.id]

    def _set_status(self, vm: instance_pb2.Instance, status: int) -> None:
        vm.status = status
        self.statuses.setdefault(vm.name, []).append(instance_pb2.Instance.Status.Name(status))

    def image_names(self, folder_id: str) -> set[str]:
        with self._lock:
            return {i.name for i in self.images.values() if i.folder_id == folder_id}

    def name_taken(self, folder_id: str, name: str, but: image_pb2.Image | None = None) -> bool:
        with self._lock:
            return any(
                i.folder_id == folder_id and i.name == name and i is not but
                for i in self.images.values()
            )

    def fail(
        self,
        code: grpc.StatusCode,
        method: str = "",
        times: int = 1_000_000,
        message: str = "injected",
    ) -> None:
        """Fail calls whose method name contains ``method`` (e.g. 'ImageService/List')."""
        with self._lock:
            self.failures.append(Failure(code, method, times, message))

    def clear_failures(self) -> None:
        with self._lock:
            self.failures.clear()

    # -- shared request checks -------------------------------------------------

    def enter(self, method: str, context: grpc.ServicerContext, needs_auth: bool = True) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        with self._lock:
            self.calls.append((method, metadata))
            for failure in self.failures:
                if failure.remaining > 0 and failure.method in method:
                    failure.remaining -= 1
                    context.abort(failure.code, failure.message)
        if needs_auth and metadata.get("authorization") != f"Bearer {self.iam_token}":
            # guess: the status is what yandexcloud's auth docs describe for a
            # bad IAM token; the text is ours.
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "The token is invalid")

    def new_operation(self, description: str) -> operation_pb2.Operation:
        with self._lock:
            op = operation_pb2.Operation(
                id=f"fhm{next(self._ids):017d}", description=description, done=False
            )
            op.created_at.GetCurrentTime()
            self.operations[op.id] = op
        return op


def _filtered_name(text: str, context: grpc.ServicerContext) -> str | None:
    """The name a List filter asks for (`name = "x"`, the only filter used), or None."""
    if not text:
        return None
    match = _NAME_FILTER.match(text)
    if not match:
        # guess: message text
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid filter {text}")
    return match.group(1)


class _Endpoints(api_endpoint_service_pb2_grpc.ApiEndpointServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ApiEndpointService/List", context, needs_auth=False)
        return api_endpoint_service_pb2.ListApiEndpointsResponse(
            endpoints=[
                api_endpoint_pb2.ApiEndpoint(id=s, address=self.fake.endpoint) for s in SERVICES
            ]
        )


class _Iam(iam_token_service_pb2_grpc.IamTokenServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("IamTokenService/Create", context, needs_auth=False)
        if not (request.yandex_passport_oauth_token or request.jwt):
            # guess: text ours; the request names neither credential.
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no credentials")
        response = iam_token_service_pb2.CreateIamTokenResponse(iam_token=self.fake.iam_token)
        response.expires_at.GetCurrentTime()
        response.expires_at.seconds += 3600
        return response


class _Images(image_service_pb2_grpc.ImageServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ImageService/Get", context)
        image = self.fake.images.get(request.image_id)
        if image is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Image {request.image_id} not found")
        return image

    def GetLatestByFamily(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ImageService/GetLatestByFamily", context)
        ready = [
            i
            for i in self.fake.images.values()
            if i.folder_id == request.folder_id
            and i.family == request.family
            and i.status == image_pb2.Image.READY
        ]
        if not ready:
            # guess: message text
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Image with family {request.family} not found"
            )
        return max(ready, key=lambda i: i.created_at.ToNanoseconds())

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ImageService/List", context)
        name = _filtered_name(request.filter, context)
        chosen = sorted(
            (
                i
                for i in self.fake.images.values()
                if i.folder_id == request.folder_id and (name is None or i.name == name)
            ),
            key=lambda i: i.id,
        )
        start = int(request.page_token or 0)
        size = request.page_size or 100
        response = image_service_pb2.ListImagesResponse(images=chosen[start : start + size])
        if start + size < len(chosen):
            response.next_page_token = str(start + size)
        return response

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ImageService/Create", context)
        if self.fake.name_taken(request.folder_id, request.name):
            # Names are unique per folder: Yandex's API reference says "The name
            # must be unique within the folder" of named resources (e.g. VPC
            # CreateNetworkRequest.name, DNS zones, snapshot schedules).
            # guess: that images follow it with ALREADY_EXISTS and this text.
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Image {request.name} already exists")
        image = self.fake.add_image(
            request.folder_id, request.name, request.family, dict(request.labels)
        )
        op = self.fake.new_operation("Create image")
        op.metadata.Pack(image_service_pb2.CreateImageMetadata(image_id=image.id))
        op.response.Pack(image)
        return op

    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ImageService/Update", context)
        image = self.fake.images.get(request.image_id)
        if image is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Image {request.image_id} not found")
        if "name" in request.update_mask.paths:
            if self.fake.name_taken(image.folder_id, request.name, but=image):
                # guess: as for Create above.
                context.abort(
                    grpc.StatusCode.ALREADY_EXISTS, f"Image {request.name} already exists"
                )
            image.name = request.name
        op = self.fake.new_operation("Update image")
        op.metadata.Pack(image_service_pb2.UpdateImageMetadata(image_id=image.id))
        op.response.Pack(image)
        return op

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("ImageService/Delete", context)
        if request.image_id not in self.fake.images:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Image {request.image_id} not found")
        op = self.fake.new_operation("Delete image")
        if self.fake.operation_error is None:
            del self.fake.images[request.image_id]
        return op


class _Instances(instance_service_pb2_grpc.InstanceServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        """What the yandex builder sends (step_create_instance.go): name, labels, zone,
        scheduling policy, boot disk by id, one interface in ``subnet_id``."""
        fake = self.fake
        fake.enter("InstanceService/Create", context)
        subnet_id = request.network_interface_specs[0].subnet_id
        subnet = fake.subnets.get(subnet_id)
        if subnet is None or subnet.zone_id != request.zone_id:
            # The subnet must be in the instance's zone ("A subnet is created in one
            # availability zone", https://yandex.cloud/en/docs/vpc/concepts/network#subnet);
            # guess: the status and text of the refusal.
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Subnet {subnet_id} is not in zone {request.zone_id}",
            )
        vm = fake.add_instance(
            request.folder_id, request.name, request.zone_id, instance_pb2.Instance.RUNNING
        )
        vm.labels.update(dict(request.labels))
        vm.created_at.GetCurrentTime()
        vm.scheduling_policy.preemptible = request.scheduling_policy.preemptible
        fake.vm_subnets[request.name] = subnet_id
        fake.statuses[request.name] = ["RUNNING"]
        if vm.scheduling_policy.preemptible and request.zone_id in fake.preempt_zones:
            fake._preempt_at[vm.id] = time.monotonic() + fake.preempt_after
        op = fake.new_operation("Create instance")
        op.metadata.Pack(instance_service_pb2.CreateInstanceMetadata(instance_id=vm.id))
        op.response.Pack(vm)
        return op

    def GetSerialPortOutput(self, request: Any, context: grpc.ServicerContext) -> Any:
        fake = self.fake
        fake.enter("InstanceService/GetSerialPortOutput", context)
        vm = fake.instances.get(request.instance_id)
        if vm is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Instance {request.instance_id} not found")
        # guess: what a Debian VM's serial console holds; our client only shows its tail.
        return instance_service_pb2.GetInstanceSerialPortOutputResponse(
            contents=f"[  OK  ] Started ssh.service - OpenBSD Secure Shell server.\n"
            f"{vm.name} login: \n"
        )

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        fake = self.fake
        fake.enter("InstanceService/Delete", context)
        vm = fake.instances.get(request.instance_id)
        if vm is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Instance {request.instance_id} not found")
        fake._set_status(vm, instance_pb2.Instance.DELETING)
        del fake.instances[request.instance_id]
        fake._preempt_at.pop(request.instance_id, None)
        return fake.new_operation("Delete instance")

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("InstanceService/List", context)
        self.fake.advance()
        name = _filtered_name(request.filter, context)
        chosen = [
            i
            for i in self.fake.instances.values()
            if i.folder_id == request.folder_id and (name is None or i.name == name)
        ]
        return instance_service_pb2.ListInstancesResponse(instances=chosen)


class _Disks(disk_service_pb2_grpc.DiskServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        fake = self.fake
        fake.enter("DiskService/Create", context)
        disk = fake.add_disk(
            request.folder_id,
            request.name,
            request.zone_id,
            dict(request.labels),
            datetime.now(timezone.utc),
        )
        op = fake.new_operation("Create disk")
        op.metadata.Pack(disk_service_pb2.CreateDiskMetadata(disk_id=disk.id))
        op.response.Pack(disk)
        return op

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("DiskService/List", context)
        chosen = [d for d in self.fake.disks.values() if d.folder_id == request.folder_id]
        return disk_service_pb2.ListDisksResponse(disks=chosen)

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("DiskService/Delete", context)
        if self.fake.disks.pop(request.disk_id, None) is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Disk {request.disk_id} not found")
        return self.fake.new_operation("Delete disk")


class _Networks(network_service_pb2_grpc.NetworkServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("NetworkService/List", context)
        name = _filtered_name(request.filter, context)
        chosen = [
            n
            for n in self.fake.networks.values()
            if n.folder_id == request.folder_id and (name is None or n.name == name)
        ]
        return network_service_pb2.ListNetworksResponse(networks=chosen)

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        fake = self.fake
        fake.enter("NetworkService/Create", context)
        with fake._lock:
            network = network_pb2.Network(
                id=f"enp{next(fake._ids):017d}", folder_id=request.folder_id, name=request.name
            )
            fake.networks[network.id] = network
        op = fake.new_operation("Create network")
        op.metadata.Pack(network_service_pb2.CreateNetworkMetadata(network_id=network.id))
        op.response.Pack(network)
        return op

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("NetworkService/Delete", context)
        if self.fake.networks.pop(request.network_id, None) is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Network {request.network_id} not found")
        return self.fake.new_operation("Delete network")

    def ListSubnets(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("NetworkService/ListSubnets", context)
        chosen = [s for s in self.fake.subnets.values() if s.network_id == request.network_id]
        return network_service_pb2.ListNetworkSubnetsResponse(subnets=chosen)


class _Subnets(subnet_service_pb2_grpc.SubnetServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        fake = self.fake
        fake.enter("SubnetService/Create", context)
        with fake._lock:
            subnet = subnet_pb2.Subnet(
                id=f"e9b{next(fake._ids):017d}",
                folder_id=request.folder_id,
                name=request.name,
                network_id=request.network_id,
                zone_id=request.zone_id,
            )
            fake.subnets[subnet.id] = subnet
        op = fake.new_operation("Create subnet")
        op.metadata.Pack(subnet_service_pb2.CreateSubnetMetadata(subnet_id=subnet.id))
        op.response.Pack(subnet)
        return op

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("SubnetService/Delete", context)
        if self.fake.subnets.pop(request.subnet_id, None) is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Subnet {request.subnet_id} not found")
        return self.fake.new_operation("Delete subnet")


class _Operations(operation_service_pb2_grpc.OperationServiceServicer):
    def __init__(self, fake: FakeYandex):
        self.fake = fake

    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.fake.enter("OperationService/Get", context)
        op = self.fake.operations.get(request.operation_id)
        if op is None:
            # guess: message text
            context.abort(grpc.StatusCode.NOT_FOUND, f"Operation {request.operation_id} not found")
        done = operation_pb2.Operation()
        done.CopyFrom(op)
        done.done = True
        if self.fake.operation_error:
            done.error.code = grpc.StatusCode.FAILED_PRECONDITION.value[0]
            done.error.message = self.fake.operation_error
        return done
