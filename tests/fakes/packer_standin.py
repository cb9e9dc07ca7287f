"""A stand-in `packer` for cloud build tests: it plays the build step only.

`packer build ... DIR` reads DIR/inputs.auto.pkrvars.json (as the real build
would through the template), prints Packer-like output, creates the image in
the cloud fake through its real API when one is configured, and appends a run
to the manifest exactly as the manifest post-processor does. Every other
subcommand (version, validate, fmt, init) runs the real packer.

It runs under the interpreter of the tests (which has grpc), never under the
python3 that PATH finds: start it as `sys.executable packer_standin.py ...`, or
put the launcher that install() writes first on PATH as `packer`.

Every line it prints for a lost build VM is what Packer prints (sources beside
each); with the GCE fake the VM is created and deleted through its API, and the
fake decides what happens to it (FakeGce.state.zone_trouble), as GCE would.

With a fake (EVERBAKE_GCE_ENDPOINT / EVERBAKE_YANDEX_ENDPOINT) the VM and its
disk are made and removed through the fake's API as the builders do, and the
fake decides the VM's fate (GCE: zone_trouble, preempt_after; Yandex:
preempt_zones, preempt_after): stopped while booting, it prints "Timeout waiting
for SSH."; stopped mid-script, "Script exited with non-zero exit status: 143".

Environment:
  EVERBAKE_STANDIN_LOSE     zone=kind,... (zone "*" for every zone): what happens
                            to a build VM there, without asking a fake:
                            preempt (the session drops mid-script),
                            ssh-timeout (the SSH wait runs out), stockout,
                            failed-start (GCE only); disconnect drops the
                            session of a VM that is NOT preempted
  EVERBAKE_STANDIN_LOST_LINE  143 (default), disconnect or ssh-timeout: how a
                            VM lost mid-script shows on the console
  EVERBAKE_STANDIN_BOOT, EVERBAKE_STANDIN_SCRIPT  seconds the VM boots and
                            runs its scripts (with a fake; default 0)
  EVERBAKE_STANDIN_LEAK     disk or instance: the cleanup fails to delete it
  EVERBAKE_STANDIN_FAIL     make the build fail with this provisioning error
  EVERBAKE_STANDIN_LOG      append one JSON line per build: argv, zone,
                            preemptible, outcome
  EVERBAKE_GCE_ENDPOINT     GCE fake: insert the image there (project from vars)
  EVERBAKE_YANDEX_ENDPOINT, EVERBAKE_YANDEX_CA_FILE, YC_TOKEN
                            Yandex fake: create the image there
  EVERBAKE_STANDIN_REAL_PACKER  the real packer for the other subcommands (install sets it)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def install(bin_dir: Path) -> Path:
    """Write bin_dir/packer, a launcher running this stand-in under sys.executable;
    the real packer (found now, outside bin_dir) serves the other subcommands."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PATH", "")
    others = os.pathsep.join(p for p in path.split(os.pathsep) if Path(p or ".") != bin_dir)
    real = shutil.which("packer", path=others) or ""
    launcher = bin_dir / "packer"
    launcher.write_text(
        "#!/bin/sh\n"
        f"EVERBAKE_STANDIN_REAL_PACKER={shlex.quote(real)}\n"
        "export EVERBAKE_STANDIN_REAL_PACKER\n"
        f'exec {shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return launcher


def real_packer() -> str:
    found = os.environ.get("EVERBAKE_STANDIN_REAL_PACKER", "")
    if not found:
        sys.exit("packer stand-in: no real packer for this subcommand (start it through install())")
    return found


# Packer's UI prefixes each builder line with "==> <source>: ", and ends a failed
# build with "Build '<source>' errored after <duration>: <error>" (hashicorp/packer
# command/build.go); the progress texts ("Creating instance...", "Creating image:",
# "Deleting instance...") are googlecompute's and yandex's step messages; guess:
# their exact wording beyond those cited in shared/facts/packer.md.
def say(source: str, line: str) -> None:
    print(f"==> {source}: {line}", flush=True)


def log(record: dict) -> None:
    path = os.environ.get("EVERBAKE_STANDIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def create_gce_image(endpoint: str, values: dict) -> str:
    project = values["project_id"]
    body = {
        "name": values["image_name"],
        "family": values.get("image_family", ""),
        "labels": values.get("image_labels", {}),
        "description": values.get("image_description", ""),
    }
    request = urllib.request.Request(
        f"{endpoint}/compute/v1/projects/{project}/global/images",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    # Loopback only: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        json.load(response)
    return values["image_name"]


def gce_call(endpoint: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{endpoint}/compute/v1/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method=method,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.load(response)


def lose_in(zone: str, preemptible: bool) -> str:
    """EVERBAKE_STANDIN_LOSE's kind for ``zone`` ('' when nothing happens there)."""
    for item in os.environ.get("EVERBAKE_STANDIN_LOSE", "").split(","):
        where, _, kind = item.strip().partition("=")
        if where in ("*", zone) and (preemptible or kind in ("stockout", "disconnect")):
            return kind
    return ""


# googlecompute's creation failure: the insert operation's errors, as
# "Error creating instance: 1 error(s) occurred:" then "* <message>"
# (hashicorp/packer#9133 quotes "* Instance failed to start due to preemption.";
# the prefix is step_create_instance.go's "Error creating instance: %s").
CREATION_FAILED = "Error creating instance: 1 error(s) occurred:"
# hashicorp/packer provisioner/shell/provisioner.go: the error when the remote
# command ends without an exit status (a VM gone mid-script).
DISCONNECTED = (
    "Script disconnected unexpectedly. If you expected your script to disconnect, i.e. from a "
    'restart, you can try adding `"expect_disconnect": true` or `"valid_exit_codes": [0, '
    "2300218]` to the shell provisioner parameters."
)
# The SSH dial error of a VM that is gone (hashicorp/packer#9133: "dial tcp
# <ip>:22: i/o timeout"); guess: the "Error uploading script" prefix.
SSH_TIMEOUT = "Error uploading script: dial tcp 203.0.113.7:22: i/o timeout"
# packer-plugin-sdk communicator/step_connect_ssh.go: the only console line when
# the SSH wait runs out (each failed dial is a DEBUG log line).
SSH_WAIT = "Waiting for SSH to become available..."
SSH_WAIT_TIMEOUT = "Timeout waiting for SSH."
SSH_CONNECTED = "Connected to SSH!"
# hashicorp/packer provisioner/shell/provisioner.go: "Script exited with non-zero
# exit status: %d. Allowed exit codes are: %v"; systemd's SIGTERM at shutdown
# ends the script with 128+15.
SIGTERM_EXIT = "Script exited with non-zero exit status: 143. Allowed exit codes are: [0]"


def lost_line() -> str:
    """How a VM lost mid-script shows: EVERBAKE_STANDIN_LOST_LINE (143 by default)."""
    return {"disconnect": DISCONNECTED, "ssh-timeout": SSH_TIMEOUT}.get(
        os.environ.get("EVERBAKE_STANDIN_LOST_LINE", ""), SIGTERM_EXIT
    )


def errored(source: str, error: str, record: dict, outcome: str) -> int:
    # hashicorp/packer command/build.go: "Build '%s' errored after %s: %s".
    print(f"Build '{source}' errored after 3 minutes 12 seconds: {error}", flush=True)
    log({**record, "outcome": outcome})
    return 1


def lost_vm(source: str, provider: str, kind: str, first_script: str, record: dict) -> int:
    """Without a fake: print what Packer prints when the VM is lost as ``kind`` says."""
    if kind in ("stockout", "failed-start"):
        say(source, CREATION_FAILED)
        message = (
            "Instance failed to start due to preemption."
            if kind == "failed-start"
            else f"The zone 'projects/p/zones/{record['zone']}' does not have enough resources "
            "available to fulfill the request.  Try a different zone, or try again later."
        )
        say(source, f"* {message}")
        print(f"Build '{source}' errored after 20 seconds: {CREATION_FAILED}", flush=True)
        log({**record, "outcome": kind})
        return 1
    if kind == "ssh-timeout":
        say(source, SSH_WAIT)
        say(source, SSH_WAIT_TIMEOUT)
        cleanup_lines(source, provider)
        return errored(source, SSH_WAIT_TIMEOUT, record, "lost")
    say(source, f"Provisioning with shell script: {first_script}")
    cleanup_lines(source, provider)
    error = DISCONNECTED if kind == "disconnect" else lost_line()
    return errored(source, error, record, "lost" if kind != "disconnect" else "disconnected")


def cleanup_lines(source: str, provider: str) -> None:
    """The builders' failure cleanup (googlecompute step_create_instance.go Cleanup;
    yandex step_create_instance.go Cleanup)."""
    if provider == "yandex":
        say(source, "Destroying instance...")
        say(source, "Instance has been destroyed!")
        say(source, "Destroying boot disk...")
        say(source, "Disk has been deleted!")
    else:
        say(source, "Deleting instance...")
        say(source, "Instance has been deleted!")
        say(source, "Deleting disk...")
        say(source, "Disk has been deleted!")


def yandex_channel(endpoint: str):  # type: ignore[no-untyped-def]
    """A TLS channel to the Yandex fake and the call metadata the builder's SDK sends."""
    import grpc

    roots = Path(os.environ["EVERBAKE_YANDEX_CA_FILE"]).read_bytes()
    channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(roots))
    return channel, [("authorization", f"Bearer {os.environ.get('YC_TOKEN', '')}")]


def yandex_stubs(endpoint: str):  # type: ignore[no-untyped-def]
    from yandex.cloud.compute.v1 import (
        disk_service_pb2_grpc,
        image_service_pb2_grpc,
        instance_service_pb2_grpc,
    )

    channel, metadata = yandex_channel(endpoint)
    return (
        image_service_pb2_grpc.ImageServiceStub(channel),
        instance_service_pb2_grpc.InstanceServiceStub(channel),
        disk_service_pb2_grpc.DiskServiceStub(channel),
        metadata,
    )


def create_yandex_image(endpoint: str, values: dict) -> str:
    from yandex.cloud.compute.v1 import image_service_pb2

    images, _vms, _disks, metadata = yandex_stubs(endpoint)
    request = image_service_pb2.CreateImageRequest(
        folder_id=values["folder_id"],
        name=values["image_name"],
        family=values.get("image_family", ""),
        labels=values.get("image_labels", {}),
        description=values.get("image_description", ""),
    )
    operation = images.Create(request, metadata=metadata, timeout=10)
    meta = image_service_pb2.CreateImageMetadata()
    operation.metadata.Unpack(meta)
    return meta.image_id


class CloudVm:
    """The build VM in a fake, made and removed as the builder does. ``status()`` is
    the stand-in's way of knowing the VM is gone: real Packer only sees its SSH
    session die (it never asks the cloud), so this is not a line Packer prints."""

    def __init__(self, provider: str, values: dict, record: dict) -> None:
        self.provider, self.values, self.record = provider, values, record
        self.zone = values.get("zone", "")
        self.name = values.get("instance_name", "packer-standin")
        self.ids: dict[str, str] = {}

    # -- GCE -------------------------------------------------------------------

    def create(self, source: str) -> str:
        """'' when the VM runs, else the creation error Packer printed."""
        if self.provider == "gcp":
            return self._create_gce(source)
        return self._create_yandex(source)

    def _create_gce(self, source: str) -> str:
        gce = os.environ["EVERBAKE_GCE_ENDPOINT"]
        where = f"projects/{self.values['project_id']}/zones/{self.zone}"
        body = {
            "name": self.name,
            "labels": self.values.get("build_labels", {}),
            "scheduling": {"preemptible": bool(self.values.get("preemptible"))},
            "disks": [{"boot": True, "initializeParams": {"diskName": self.name}}],
        }
        say(source, "Creating instance...")
        op = gce_call(gce, "POST", f"{where}/instances", body)
        # step_create_instance.go: "Waiting for creation operation to complete...".
        print(f"    {source}: Waiting for creation operation to complete...", flush=True)
        errors = op.get("error", {}).get("errors", [])
        if errors:
            say(source, CREATION_FAILED)
            for error in errors:
                say(source, f"* {error['message']}")
            return CREATION_FAILED
        print(f"    {source}: Instance has been created!", flush=True)
        return ""

    def _create_yandex(self, source: str) -> str:
        from yandex.cloud.compute.v1 import disk_service_pb2, instance_service_pb2

        _images, vms, disks, metadata = yandex_stubs(os.environ["EVERBAKE_YANDEX_ENDPOINT"])
        subnet = self.values.get("subnet_id", "")
        if subnet:
            say(source, f"Use provided subnet id {subnet}")
        else:
            # step_create_instance.go createNetwork/createSubnet: every build without
            # subnet_id makes its own network and subnet.
            subnet = self._builder_network(source)
        say(source, "Creating disk...")
        op = disks.Create(
            disk_service_pb2.CreateDiskRequest(
                folder_id=self.values["folder_id"],
                # config.go: DiskName defaults to the instance name + "-disk".
                name=f"{self.name}-disk",
                zone_id=self.zone,
                labels=self.values.get("disk_labels", {}),
            ),
            metadata=metadata,
            timeout=10,
        )
        meta = disk_service_pb2.CreateDiskMetadata()
        op.metadata.Unpack(meta)
        self.ids["disk"] = meta.disk_id
        say(source, "Creating instance...")
        request = instance_service_pb2.CreateInstanceRequest(
            folder_id=self.values["folder_id"],
            name=self.name,
            labels=self.values.get("build_labels", {}),
            zone_id=self.zone,
        )
        request.scheduling_policy.preemptible = bool(self.values.get("preemptible"))
        request.boot_disk_spec.disk_id = meta.disk_id
        request.network_interface_specs.add(subnet_id=subnet)
        try:
            op = vms.Create(request, metadata=metadata, timeout=10)
        except Exception as exc:  # grpc.RpcError
            # step_create_instance.go: "Error create instance: %s".
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            message = f"Error create instance: {detail}"
            say(source, message)
            return message
        vm_meta = instance_service_pb2.CreateInstanceMetadata()
        op.metadata.Unpack(vm_meta)
        self.ids["instance"] = vm_meta.instance_id
        return ""

    def _builder_network(self, source: str) -> str:
        from yandex.cloud.vpc.v1 import (
            network_service_pb2,
            network_service_pb2_grpc,
            subnet_service_pb2,
            subnet_service_pb2_grpc,
        )

        channel, metadata = yandex_channel(os.environ["EVERBAKE_YANDEX_ENDPOINT"])
        folder = self.values["folder_id"]
        say(source, "Creating network...")
        op = network_service_pb2_grpc.NetworkServiceStub(channel).Create(
            network_service_pb2.CreateNetworkRequest(
                folder_id=folder, name=f"packer-network-{uuid.uuid4()}"
            ),
            metadata=metadata,
            timeout=10,
        )
        meta = network_service_pb2.CreateNetworkMetadata()
        op.metadata.Unpack(meta)
        self.ids["network"] = meta.network_id
        say(source, f'Creating subnet in zone "{self.zone}"...')
        op = subnet_service_pb2_grpc.SubnetServiceStub(channel).Create(
            subnet_service_pb2.CreateSubnetRequest(
                folder_id=folder,
                network_id=meta.network_id,
                name=f"packer-subnet-{uuid.uuid4()}",
                zone_id=self.zone,
                v4_cidr_blocks=["192.168.111.0/24"],
            ),
            metadata=metadata,
            timeout=10,
        )
        subnet = subnet_service_pb2.CreateSubnetMetadata()
        op.metadata.Unpack(subnet)
        self.ids["subnet"] = subnet.subnet_id
        return subnet.subnet_id

    def _drop_builder_network(self, source: str) -> None:
        from yandex.cloud.vpc.v1 import (
            network_service_pb2,
            network_service_pb2_grpc,
            subnet_service_pb2,
            subnet_service_pb2_grpc,
        )

        channel, metadata = yandex_channel(os.environ["EVERBAKE_YANDEX_ENDPOINT"])
        if "subnet" in self.ids:
            say(source, "Destroying subnet...")
            subnet_service_pb2_grpc.SubnetServiceStub(channel).Delete(
                subnet_service_pb2.DeleteSubnetRequest(subnet_id=self.ids["subnet"]),
                metadata=metadata,
                timeout=10,
            )
            print(f"    {source}: Subnet has been deleted!", flush=True)
        if "network" in self.ids:
            say(source, "Destroying network...")
            network_service_pb2_grpc.NetworkServiceStub(channel).Delete(
                network_service_pb2.DeleteNetworkRequest(network_id=self.ids["network"]),
                metadata=metadata,
                timeout=10,
            )
            print(f"    {source}: Network has been deleted!", flush=True)

    def status(self) -> str:
        if self.provider == "gcp":
            gce = os.environ["EVERBAKE_GCE_ENDPOINT"]
            where = f"projects/{self.values['project_id']}/zones/{self.zone}"
            try:
                return str(gce_call(gce, "GET", f"{where}/instances/{self.name}")["status"])
            except urllib.error.HTTPError:
                return "GONE"
        from yandex.cloud.compute.v1 import instance_pb2, instance_service_pb2

        _images, vms, _disks, metadata = yandex_stubs(os.environ["EVERBAKE_YANDEX_ENDPOINT"])
        found = vms.List(
            instance_service_pb2.ListInstancesRequest(
                folder_id=self.values["folder_id"], filter=f'name = "{self.name}"'
            ),
            metadata=metadata,
            timeout=10,
        ).instances
        return instance_pb2.Instance.Status.Name(found[0].status) if found else "GONE"

    def running(self) -> bool:
        return self.status() == "RUNNING"

    def remove(self, source: str, leak: str) -> None:
        """The builder's cleanup: the instance, then its boot disk."""
        if self.provider == "gcp":
            gce = os.environ["EVERBAKE_GCE_ENDPOINT"]
            where = f"projects/{self.values['project_id']}/zones/{self.zone}"
            say(source, "Deleting instance...")
            if leak != "instance":
                gce_call(gce, "DELETE", f"{where}/instances/{self.name}")
                print(f"    {source}: Instance has been deleted!", flush=True)
            say(source, "Deleting disk...")
            if leak in ("disk", "instance"):
                # step_create_instance.go Cleanup's error text.
                say(source, f"Error deleting disk. Please delete it manually.\n\nName: {self.name}")
                return
            gce_call(gce, "DELETE", f"{where}/disks/{self.name}")
            print(f"    {source}: Disk has been deleted!", flush=True)
            return
        from yandex.cloud.compute.v1 import disk_service_pb2, instance_service_pb2

        _images, vms, disks, metadata = yandex_stubs(os.environ["EVERBAKE_YANDEX_ENDPOINT"])
        if "instance" in self.ids:
            say(source, "Destroying instance...")
            vms.Delete(
                instance_service_pb2.DeleteInstanceRequest(instance_id=self.ids["instance"]),
                metadata=metadata,
                timeout=10,
            )
            print(f"    {source}: Instance has been destroyed!", flush=True)
        self._drop_builder_network(source)
        if "disk" in self.ids:
            say(source, "Destroying boot disk...")
            if leak == "disk":
                say(
                    source,
                    # step_create_instance.go Cleanup's error text.
                    f"Error destroying boot disk (id: {self.ids['disk']}). "
                    "Please destroy it manually",
                )
                return
            disks.Delete(
                disk_service_pb2.DeleteDiskRequest(disk_id=self.ids["disk"]),
                metadata=metadata,
                timeout=10,
            )
            print(f"    {source}: Disk has been deleted!", flush=True)


def wait_while_running(vm: CloudVm, seconds: float) -> bool:
    """Let ``seconds`` pass as the VM boots or runs a script; False if it stops."""
    deadline = time.monotonic() + seconds
    while True:
        if not vm.running():
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


def build_in_fake(source: str, provider: str, values: dict, record: dict, argv: list[str]) -> int:
    """The build with the VM in a fake: the fake decides the VM's fate, the stand-in
    prints what Packer would print for it."""
    vm = CloudVm(provider, values, record)
    failed = vm.create(source)
    leak = os.environ.get("EVERBAKE_STANDIN_LEAK", "")
    if failed:
        vm.remove(source, leak) if vm.ids else None
        print(f"Build '{source}' errored after 20 seconds: {failed}", flush=True)
        log({**record, "outcome": "not created"})
        return 1
    scripts = values.get("scripts", []) or ["script"]
    boot = float(os.environ.get("EVERBAKE_STANDIN_BOOT", "0"))
    run = float(os.environ.get("EVERBAKE_STANDIN_SCRIPT", "0"))
    say(source, SSH_WAIT)
    if not wait_while_running(vm, boot):
        say(source, SSH_WAIT_TIMEOUT)
        fail_cleanup(source, vm, values, leak, argv)
        return errored(source, SSH_WAIT_TIMEOUT, record, "lost at boot")
    say(source, SSH_CONNECTED)
    for script in scripts:
        say(source, f"Provisioning with shell script: {script}")
        if not wait_while_running(vm, run / len(scripts)):
            fail_cleanup(source, vm, values, leak, argv)
            return errored(source, lost_line(), record, "lost")
    failure = os.environ.get("EVERBAKE_STANDIN_FAIL")
    if failure:
        say(source, f"+ {failure}")
        fail_cleanup(source, vm, values, leak, argv)
        return errored(
            source,
            "Script exited with non-zero exit status: 1. Allowed exit codes are: [0]",
            record,
            "failed",
        )
    if provider == "yandex":
        say(source, "Stopping instance...")  # step_teardown_instance.go (success only)
    vm.remove(source, "")
    say(source, f"Creating image: {values['image_name']}")
    if provider == "gcp":
        artifact = create_gce_image(os.environ["EVERBAKE_GCE_ENDPOINT"], values)
    else:
        artifact = create_yandex_image(os.environ["EVERBAKE_YANDEX_ENDPOINT"], values)
    write_manifest(Path(values["manifest_path"]), source, provider, artifact, values)
    print(f"Build '{source}' finished.", flush=True)
    log({**record, "outcome": "built", "artifact_id": artifact})
    return 0


def fail_cleanup(source: str, vm: CloudVm, values: dict, leak: str, argv: list[str]) -> None:
    if "-on-error=abort" in argv:
        # packer-plugin-sdk multistep/commonsteps/multistep_runner.go
        # (handleAbortsAndInterupts): no step's cleanup runs, the VM stays.
        say(source, 'Step "StepProvision" failed, aborting...')
        for step in ("StepConnect", "StepCreateInstance", "StepCreateSSHKey"):
            say(source, f'aborted: skipping cleanup of step "{step}"')
        return
    serial = values.get("serial_log_file")
    if serial:
        # yandex step_create_instance.go Cleanup writes the serial port output first.
        say(source, "Current state 'cancelled' or 'halted'...")
        # guess: what a Debian VM's serial console holds; our client only shows its tail.
        Path(serial).write_text(
            f"[  OK  ] Started ssh.service - OpenBSD Secure Shell server.\n{vm.name} login: \n",
            encoding="utf-8",
        )
    vm.remove(source, leak)


def build(argv: list[str]) -> int:
    directory = Path(argv[-1] if argv and not argv[-1].startswith("-") else ".")
    values = json.loads((directory / "inputs.auto.pkrvars.json").read_text(encoding="utf-8"))
    provider = "yandex" if "folder_id" in values else "gcp"
    builder = "yandex" if provider == "yandex" else "googlecompute"
    source = f"{builder}.{values.get('layer', 'image')}"
    zone = values.get("zone", "")
    preemptible = bool(values.get("preemptible", False))
    record = {"argv": argv, "zone": zone, "preemptible": preemptible, "provider": provider}
    record["instance"] = values.get("instance_name", "")
    record["subnet"] = values.get("subnet_id") or values.get("subnetwork") or ""
    in_fake = os.environ.get(
        "EVERBAKE_GCE_ENDPOINT" if provider == "gcp" else "EVERBAKE_YANDEX_ENDPOINT"
    )
    kind = lose_in(zone, preemptible)
    if in_fake and not kind:
        return build_in_fake(source, provider, values, record, argv)
    say(source, "Creating instance...")
    scripts = values.get("scripts", []) or ["script"]
    if kind:
        return lost_vm(source, provider, kind, scripts[0], record)
    failure = os.environ.get("EVERBAKE_STANDIN_FAIL")
    if failure:
        say(source, f"+ {failure}")
        cleanup_lines(source, provider)
        return errored(
            source,
            "Script exited with non-zero exit status: 1. Allowed exit codes are: [0]",
            record,
            "failed",
        )
    for script in scripts:
        say(source, f"Provisioning with shell script: {script}")
    say(source, f"Creating image: {values['image_name']}")
    artifact = values["image_name"] if provider == "gcp" else f"fd8{uuid.uuid4().hex[:17]}"
    write_manifest(Path(values["manifest_path"]), source, provider, artifact, values)
    print(f"Build '{source}' finished.", flush=True)
    log({**record, "outcome": "built", "artifact_id": artifact})
    return 0


def write_manifest(path: Path, source: str, provider: str, artifact: str, values: dict) -> None:
    """Append this run as the manifest post-processor does (strip_path, custom_data)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {"builds": []}
    run_uuid = str(uuid.uuid4())
    manifest["builds"].append(
        {
            "name": source.split(".", 1)[1],
            "builder_type": "yandex" if provider == "yandex" else "googlecompute",
            "build_time": int(time.time()),
            "files": None,
            "artifact_id": artifact,
            "packer_run_uuid": run_uuid,
            "custom_data": {
                "fingerprint": values.get("fingerprint", ""),
                "image_name": values.get("image_name", ""),
                "layer": values.get("layer", ""),
                "spec": values.get("spec_name", ""),
            },
        }
    )
    manifest["last_run_uuid"] = run_uuid
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] == "build":
        return build(args[1:])
    os.execv(real_packer(), ["packer", *args])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
