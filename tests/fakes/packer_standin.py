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

Environment:
  EVERBAKE_STANDIN_LOSE     zone=kind,... (zone "*" for every zone): what happens
                            to a build VM there without the GCE fake, or on
                            Yandex: preempt (the session drops mid-script),
                            ssh-timeout, stockout, failed-start (GCE only);
                            disconnect drops the session of a VM that is NOT
                            preempted (also with the GCE fake)
  EVERBAKE_STANDIN_LOST_LINE  disconnect (default) or ssh-timeout: how a
                            preempted VM shows on the console
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


def delete_gce_image(endpoint: str, values: dict) -> None:
    """What googlecompute does under -force before it creates an image of that name."""
    project, name = values["project_id"], values["image_name"]
    url = f"{endpoint}/compute/v1/projects/{project}/global/images/{name}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method="DELETE"), timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise


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
# (hashicorp/packer#9133 quotes "* Instance failed to start due to preemption.").
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


def lost_vm(source: str, provider: str, kind: str, first_script: str, record: dict) -> int:
    """Print what Packer prints when the build VM is lost in the way ``kind`` says."""
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
    timeout = kind == "ssh-timeout" or os.environ.get("EVERBAKE_STANDIN_LOST_LINE") == "ssh-timeout"
    say(source, f"Provisioning with shell script: {first_script}")
    # Packer's own teardown lines after a failed step (shared/facts/packer.md).
    say(source, "Provisioning step had errors: Running the cleanup provisioner, if present...")
    say(source, "Destroying instance..." if provider == "yandex" else "Deleting instance...")
    error = SSH_TIMEOUT if timeout else DISCONNECTED
    print(f"Build '{source}' errored after 3 minutes 12 seconds: {error}", flush=True)
    log({**record, "outcome": "lost" if kind != "disconnect" else "disconnected"})
    return 1


def create_yandex_image(endpoint: str, values: dict) -> str:
    import grpc
    from yandex.cloud.compute.v1 import image_service_pb2, image_service_pb2_grpc

    roots = Path(os.environ["EVERBAKE_YANDEX_CA_FILE"]).read_bytes()
    channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(roots))
    stub = image_service_pb2_grpc.ImageServiceStub(channel)
    request = image_service_pb2.CreateImageRequest(
        folder_id=values["folder_id"],
        name=values["image_name"],
        family=values.get("image_family", ""),
        labels=values.get("image_labels", {}),
        description=values.get("image_description", ""),
    )
    metadata = [("authorization", f"Bearer {os.environ.get('YC_TOKEN', '')}")]
    operation = stub.Create(request, metadata=metadata, timeout=10)
    meta = image_service_pb2.CreateImageMetadata()
    operation.metadata.Unpack(meta)
    return meta.image_id


def build(argv: list[str]) -> int:
    directory = Path(argv[-1] if argv and not argv[-1].startswith("-") else ".")
    values = json.loads((directory / "inputs.auto.pkrvars.json").read_text(encoding="utf-8"))
    provider = "yandex" if "folder_id" in values else "gcp"
    builder = "yandex" if provider == "yandex" else "googlecompute"
    source = f"{builder}.{values.get('layer', 'image')}"
    zone = values.get("zone", "")
    preemptible = bool(values.get("preemptible", False))
    record = {"argv": argv, "zone": zone, "preemptible": preemptible, "provider": provider}
    say(source, "Creating instance...")
    gce = os.environ.get("EVERBAKE_GCE_ENDPOINT")
    scripts = values.get("scripts", []) or ["script"]
    kind = lose_in(zone, preemptible)
    instance = values.get("instance_name", "packer-standin")
    if provider == "gcp" and gce:
        # As googlecompute does: insert the VM and wait; the fake decides its fate.
        where = f"projects/{values['project_id']}/zones/{zone}"
        body = {"name": instance, "scheduling": {"preemptible": preemptible}}
        op = gce_call(gce, "POST", f"{where}/instances", body)
        errors = op.get("error", {}).get("errors", [])
        if errors:
            say(source, CREATION_FAILED)
            for error in errors:
                say(source, f"* {error['message']}")
            print(f"Build '{source}' errored after 20 seconds: {CREATION_FAILED}", flush=True)
            log({**record, "outcome": "not created"})
            return 1
        status = gce_call(gce, "GET", f"{where}/instances/{instance}")["status"]
        lost = "preempt" if status == "TERMINATED" else kind if kind == "disconnect" else ""
        if lost:
            gce_call(gce, "DELETE", f"{where}/instances/{instance}")
            return lost_vm(source, provider, lost, scripts[0], record)
        gce_call(gce, "DELETE", f"{where}/instances/{instance}")  # teardown before the image
    elif kind:
        return lost_vm(source, provider, kind, scripts[0], record)
    failure = os.environ.get("EVERBAKE_STANDIN_FAIL")
    if failure:
        say(source, f"+ {failure}")
        say(source, "Deleting instance...")
        # hashicorp/packer provisioner/shell: "Script exited with non-zero exit
        # status: %d. Allowed exit codes are: %v".
        print(
            f"Build '{source}' errored: Script exited with non-zero exit status: 1. "
            "Allowed exit codes are: [0]",
            flush=True,
        )
        log({**record, "outcome": "failed"})
        return 1
    for script in values.get("scripts", []):
        say(source, f"Provisioning with shell script: {script}")
    say(source, f"Creating image: {values['image_name']}")
    yc = os.environ.get("EVERBAKE_YANDEX_ENDPOINT")
    if provider == "gcp" and gce:
        if "-force" in argv:
            say(source, f"Deleting previous image: {values['image_name']}")
            delete_gce_image(gce, values)
        artifact = create_gce_image(gce, values)
    elif provider == "yandex" and yc:
        artifact = create_yandex_image(yc, values)
    else:
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
