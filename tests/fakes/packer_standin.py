"""A stand-in `packer` for cloud build tests: it plays the build step only.

`packer build ... DIR` reads DIR/inputs.auto.pkrvars.json (as the real build
would through the template), prints Packer-like output, creates the image in
the cloud fake through its real API when one is configured, and appends a run
to the manifest exactly as the manifest post-processor does. Every other
subcommand (version, validate, fmt, init) runs the real packer.

It runs under the interpreter of the tests (which has grpc), never under the
python3 that PATH finds: start it as `sys.executable packer_standin.py ...`, or
put the launcher that install() writes first on PATH as `packer`.

Environment:
  EVERBAKE_STANDIN_PREEMPT  zones (comma-separated) where a preemptible build VM
                            is preempted; "*" for every zone
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
    say(source, f"Creating instance in {zone} (preemptible: {preemptible})...")
    preempt = os.environ.get("EVERBAKE_STANDIN_PREEMPT", "")
    zones = {z.strip() for z in preempt.split(",") if z.strip()}
    if preemptible and ("*" in zones or zone in zones):
        say(source, "Waiting for SSH to become available...")
        if provider == "gcp":
            say(source, "Error waiting for SSH: instance was preempted (instances.preempted)")
        else:
            say(source, "Error: instance has been stopped")
        say(source, "Deleting instance...")
        print(f"Build '{source}' errored after 1 minute: build VM lost", flush=True)
        log({**record, "outcome": "preempted"})
        return 1
    failure = os.environ.get("EVERBAKE_STANDIN_FAIL")
    if failure:
        say(source, f"+ {failure}")
        say(source, "Deleting instance...")
        print(f"Build '{source}' errored: Script exited with non-zero exit status: 1", flush=True)
        log({**record, "outcome": "failed"})
        return 1
    for script in values.get("scripts", []):
        say(source, f"Provisioning with shell script: {script}")
    say(source, f"Creating image: {values['image_name']}")
    gce, yc = os.environ.get("EVERBAKE_GCE_ENDPOINT"), os.environ.get("EVERBAKE_YANDEX_ENDPOINT")
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
