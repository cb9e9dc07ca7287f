"""Yandex Cloud: the yandex source (plugin only: Packer 1.6.6 has none, so its
arguments are checked against the plugin's field list), a folder to build in,
images through yandexcloud, deletion without deprecation, and build-new-then-swap
to replace an image (names are unique and the plugin has no -force)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from everbake import naming, packer
from everbake.check_line import CheckLine
from everbake.errors import CloudError, EverbakeError
from everbake.providers.base import BuildSettings
from everbake.providers.cloud import BuildLayer, CloudProvider, Place, Sdk
from everbake.providers.swap import replace_by_swap
from everbake.stores.yandex import YandexImageStore, yandex_credentials_hint
from everbake.stores.yandex_vms import YandexBuildVms

if TYPE_CHECKING:
    from everbake.fingerprint import Fingerprints
    from everbake.spec import ImageSpec
    from everbake.stores import CloudImage, ImageStore

# Arguments of the yandex builder (plugin 1.1.x, shared/facts/packer.md): Packer
# 1.6.6 has no yandex builder, so rendered sources are checked against this list.
YANDEX_FIELDS = frozenset(
    [
        "folder_id",
        "source_image_family",
        "source_image_name",
        "source_image_id",
        "source_image_folder_id",
        "token",
        "service_account_key_file",
        "endpoint",
        "max_retries",
        "zone",
        "subnet_id",
        "use_ipv4_nat",
        "use_internal_ip",
        "use_ipv6",
        "security_group_ids",
        "platform_id",
        "instance_cores",
        "instance_mem_gb",
        "instance_core_fraction",
        "instance_gpus",
        "instance_name",
        "labels",
        "metadata",
        "metadata_from_file",
        "preemptible",
        "service_account_id",
        "disk_name",
        "disk_size_gb",
        "disk_type",
        "disk_labels",
        "image_name",
        "image_family",
        "image_description",
        "image_labels",
        "image_min_disk_size_gb",
        "image_product_ids",
        "image_pooled",
        "skip_create_image",
        "target_image_folder_id",
        "state_timeout",
        "serial_log_file",
        "communicator",
        "ssh_username",
        "ssh_timeout",
        "ssh_port",
        "ssh_private_key_file",
        "ssh_agent_auth",
        "ssh_pty",
        "ssh_handshake_attempts",
        "temporary_key_pair_type",
        "temporary_key_pair_bits",
        # packer-plugin-sdk communicator/config.go (SSHReadWriteTimeout), common to builders.
        "ssh_read_write_timeout",
    ]
)


PACKER_FIX = (
    "install Packer >= 1.7 (https://developer.hashicorp.com/packer/install); "
    "build-image runs 'packer init' for the yandex plugin"
)


class Yandex(CloudProvider):
    name = "yandex"
    ssh_username = "debian"
    needs_pinned_agent = True
    source_type = "yandex"
    plugin = packer.plugin(source_type)
    source_template = "yandex/source.pkr.hcl.j2"
    place = Place(
        "folder_id",
        "folder",
        "build.yandex.folder_id",
        ("YC_FOLDER_ID",),
        "export YC_FOLDER_ID=$(yc config get folder-id)  "
        "(or set build.yandex.folder_id in the image spec)",
        "folder_id",
    )
    sdk = Sdk("yandexcloud", "pip install 'everbake[yandex]'  (yandexcloud)")
    # How Yandex ends a preemptible VM: it stops it ("Preemptible VMs ... are
    # stopped", https://yandex.cloud/en/docs/compute/concepts/preemptible-vm).
    # The builder's failure cleanup deletes (DELETING) and never stops; only its
    # success path stops the VM ("Stopping instance...", step_teardown_instance.go).
    lost_statuses = frozenset({"STOPPING", "STOPPED"})
    # The builder's failure cleanup deletes the VM and waits (driver_yc.go,
    # StepCreateInstance.Cleanup): a watcher looking every 20 s can miss a stop
    # that short. With -on-error=abort the VM stays until the cloud was asked.
    keep_vm_on_error = True
    SERIAL_LOG = "serial-port.log"

    def location_in_spec(self, spec: ImageSpec) -> str:
        return spec.build.yandex.folder_id

    def build_table(self, spec: ImageSpec) -> Any:
        return spec.build.yandex

    def credentials_hint(self, environ: Mapping[str, str]) -> CheckLine:
        return yandex_credentials_hint(environ)

    def _open_store(self, location: str, environ: Mapping[str, str]) -> ImageStore:
        return YandexImageStore(location, **self._sdk_args(environ))

    def _sdk_args(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """The credentials of ``environ`` (the same ones credentials_hint() judged) and
        the endpoint and CA of a fake."""
        ca_file = environ.get("EVERBAKE_YANDEX_CA_FILE")
        try:
            roots = Path(ca_file).read_bytes() if ca_file else None
        except OSError as exc:
            raise CloudError(
                f"EVERBAKE_YANDEX_CA_FILE={ca_file}: {exc.strerror}; point it at a PEM file "
                "or unset it"
            ) from None
        return {
            "token": environ.get("YC_TOKEN") or None,
            "service_account_key": environ.get("YC_SERVICE_ACCOUNT_KEY_FILE") or None,
            "endpoint": environ.get("EVERBAKE_YANDEX_ENDPOINT") or None,
            "root_certificates": roots,
        }

    def open_build_vms(self, location: str, environ: Mapping[str, str]) -> Any:
        return YandexBuildVms(location, **self._sdk_args(environ))

    def build_checks(
        self, location: str, specs: Sequence[ImageSpec], environ: Mapping[str, str]
    ) -> list[CheckLine]:
        """A subnet for every zone listed (the spec's, or the folder's default network);
        permissions and quotas: what the SDK cannot test is said, not guessed."""
        zones = sorted({z for s in specs for z in s.build.yandex.zones})
        looked_up = [s for s in specs if self.subnets_to_look_up(s)]
        lines = []
        if looked_up:
            try:
                found = YandexBuildVms(location, **self._sdk_args(environ)).default_subnets()
            except EverbakeError as exc:
                found = {}
                lines.append(CheckLine("yandex: subnets", False, str(exc).splitlines()[0]))
            missing = sorted({z for s in looked_up for z in s.build.yandex.zones} - set(found))
            if missing:
                lines.append(
                    CheckLine(
                        "yandex: subnets",
                        False,
                        f"{location}: no subnet for zone {', '.join(missing)} in the default "
                        "network",
                        self.subnet_fix(looked_up[0], missing),
                    )
                )
            elif found:
                shown = ", ".join(f"{z} {found[z]}" for z in zones if z in found)
                lines.append(CheckLine("yandex: subnets", True, f"default network: {shown}"))
        else:
            lines.append(CheckLine("yandex: subnets", True, "named in build.yandex.subnets"))
        lines.append(
            CheckLine(
                "yandex: permissions",
                True,
                "not checked (the SDK has no permission test): a build needs compute.editor "
                f"and vpc.user on folder {location} (yc resource-manager folder "
                "add-access-binding)",
            )
        )
        lines.append(
            CheckLine(
                "yandex: quotas",
                True,
                "not checked (no quota API used): a build needs "
                f"{max((s.build.yandex.cores for s in specs), default=2)} vCPUs and one "
                "public address in its zone",
            )
        )
        return lines

    def subnets_to_look_up(self, spec: ImageSpec) -> bool:
        build = spec.build.yandex
        return not (build.subnets or build.subnet_id)

    def subnet_for(self, spec: ImageSpec, zone: str, found: Mapping[str, str]) -> str:
        build = spec.build.yandex
        return build.subnets.get(zone, "") or build.subnet_id or found.get(zone, "")

    def subnet_fix(self, spec: ImageSpec, zones: Sequence[str]) -> str:
        table = ", ".join(f'"{z}" = "<subnet id>"' for z in zones)
        return (
            f"set build.yandex.subnets = {{ {table} }} in {spec.source_path} "
            "(yc vpc subnet list), or create the folder's default network"
        )

    def serial_log(self, layer_dir: Path) -> Path | None:
        return (layer_dir / self.SERIAL_LOG).resolve()

    def render_paths(self, spec: ImageSpec, layer: str, directory: Path) -> dict[str, Any]:
        paths = super().render_paths(spec, layer, directory)
        return {**paths, "serial_log": self.serial_log(directory)}

    def artifact_id(self, image: CloudImage) -> str:
        return image.id  # the yandex builder's artifact id is the image id

    def syntax_only(self, packer_version: tuple[int, int, int]) -> bool:
        return not packer.supports_plugins(packer_version)

    def packer_hint(self, packer_version: tuple[int, int, int]) -> str:
        if not self.syntax_only(packer_version):
            return ""
        shown = ".".join(map(str, packer_version))
        return (
            f"; packer {shown} has no yandex builder: install Packer >= 1.7 "
            "(https://developer.hashicorp.com/packer/install)"
        )

    def packer_checks(self) -> list[CheckLine]:
        version = packer.detect_version_or_none()
        if version is None:
            return []
        ok = packer.supports_plugins(version)
        shown = ".".join(map(str, version))
        detail = f"packer {shown}" + ("" if ok else " has no yandex builder")
        return [CheckLine("yandex: packer builder", ok, detail, PACKER_FIX)]

    def source_problems(self, parsed: Mapping[str, Any]) -> list[str]:
        problems = []
        for block in parsed.get("source", []):
            for args in block.get(self.source_type, {}).values():
                for arg in sorted(set(args) - YANDEX_FIELDS):
                    problems.append(f'source "yandex": unknown argument {arg}')
        return problems

    def replace(
        self,
        store: ImageStore,
        existing: CloudImage,
        name: str,
        family: str,
        build: BuildLayer,
    ) -> tuple[Any, dict[str, Any], Any, CloudImage | None]:
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
        build = spec.build.yandex
        values = self.cloud_vars(spec, fps, layer, paths, settings, environ)
        values["platform_id"] = build.platform_id
        values["cores"] = build.cores
        values["memory_gb"] = build.memory_gb
        values["core_fraction"] = build.core_fraction
        subnet = settings.subnet or self.subnet_for(spec, values["zone"], {})
        if subnet:
            values["subnet_id"] = subnet
        # Written by the builder before its cleanup deletes the VM (step_create_instance.go).
        values["serial_log_file"] = str(paths["serial_log"])
        values["disk_labels"] = values["build_labels"]
        if layer == "image":
            values["source_image_name"] = naming.image_name(spec, fps, "base")
        elif spec.base.yandex.image_id:
            values["source_image_id"] = spec.base.yandex.image_id
        else:
            values["source_image_family"] = spec.base.yandex.image_family
            values["source_image_folder_id"] = spec.base.yandex.image_folder_id
        return values

    def resource_fields(self, spec: ImageSpec, record: Mapping[str, Any]) -> dict[str, Any]:
        """Yandex Cloud: folder, zone, platform/cores/memory/core fraction, subnet, service
        account id, the image id and minimum disk."""
        res = spec.resource.yandex
        folder = str(record.get("folder_id") or "")
        network = {}
        subnet = res.subnet_id or spec.build.yandex.subnet_id
        if subnet:
            network["subnet_id"] = subnet
        built = (record.get("spec_canonical") or {}).get("build", {}).get("yandex", {})
        # The VMs' service account by its id, never a key.
        account = {"service_account": res.service_account_id} if res.service_account_id else {}
        return {
            **account,
            "location": {"folder_id": res.folder_id or folder, "zones": [res.zone]},
            "machine": {
                "platform_id": res.platform_id,
                "cores": res.cores,
                "memory_gb": res.memory_gb,
                # [resource.yandex] has no core_fraction: resource VMs get whole cores.
                "core_fraction": 100,
            },
            "network": network,
            "image": {
                "folder_id": folder,
                "min_disk_size_gb": int(built.get("disk_size_gb", spec.build.yandex.disk_size_gb)),
            },
        }
