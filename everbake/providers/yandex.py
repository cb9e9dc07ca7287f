"""Yandex Cloud: the yandex source (plugin only: Packer 1.6.6 has none, so its
arguments are checked against the plugin's field list), a folder to build in,
images through yandexcloud, deletion without deprecation, and build-new-then-swap
to replace an image (names are unique and the plugin has no -force)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from everbake import naming, packer
from everbake.check_line import CheckLine
from everbake.errors import CloudError
from everbake.providers.base import BuildSettings
from everbake.providers.cloud import BuildLayer, CloudProvider, Place, Sdk
from everbake.stores.yandex import YandexImageStore, yandex_credentials_hint
from everbake.ui import phase

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
    ]
)


TEMPORARY_SUFFIX = "-new"  # fits: families leave room for "-base-" + 12 hex
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

    def location_in_spec(self, spec: ImageSpec) -> str:
        return spec.build.yandex.folder_id

    def build_table(self, spec: ImageSpec) -> Any:
        return spec.build.yandex

    def credentials_hint(self, environ: Mapping[str, str]) -> CheckLine:
        return yandex_credentials_hint(environ)

    def _open_store(self, location: str, environ: Mapping[str, str]) -> ImageStore:
        ca_file = environ.get("EVERBAKE_YANDEX_CA_FILE")
        try:
            roots = Path(ca_file).read_bytes() if ca_file else None
        except OSError as exc:
            raise CloudError(
                f"EVERBAKE_YANDEX_CA_FILE={ca_file}: {exc.strerror}; point it at a PEM file "
                "or unset it"
            ) from None
        # The credentials of ``environ``, the same ones credentials_hint() judged.
        return YandexImageStore(
            location,
            token=environ.get("YC_TOKEN") or None,
            service_account_key=environ.get("YC_SERVICE_ACCOUNT_KEY_FILE") or None,
            endpoint=environ.get("EVERBAKE_YANDEX_ENDPOINT") or None,
            root_certificates=roots,
        )

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
        """Build under a temporary name and swap only once the new image exists, so a
        failed rebuild leaves the old image in place."""
        temporary = name + TEMPORARY_SUFFIX
        old: CloudImage | None = existing
        if existing.name == temporary:
            old = _finish_swap(store, family, existing, name)
        _drop_leftover(store, family, temporary)
        image, entry, attempt = build(image_name=temporary)
        return _swap_in(store, old, image, name), entry, attempt, old

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
        if build.subnet_id:
            values["subnet_id"] = build.subnet_id
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


def _drop_leftover(store: ImageStore, family: str, temporary: str) -> None:
    """Delete a temporary image an interrupted replacement left behind (never published)."""
    for image in store.list_family(family):
        if image.name == temporary:
            with phase(f"yandex: deleting {image.name} ({image.id}), left by an earlier --force"):
                store.delete(image)


def _finish_swap(store: ImageStore, family: str, new: CloudImage, name: str) -> CloudImage:
    """An earlier replacement stopped after building ``new`` (the newest image of the
    fingerprint, still under its temporary name): finish it before building again."""
    olds = [i for i in store.list_family(family) if i.name == name]
    return _swap_in(store, olds[0] if olds else None, new, name)


def _swap_in(store: ImageStore, old: CloudImage | None, new: CloudImage, name: str) -> CloudImage:
    """Delete ``old``, then give ``new`` its name; say what is left when a step fails."""
    assert isinstance(store, YandexImageStore)
    what = f"{old.name} ({old.id})" if old else "nothing"
    with phase(f"yandex: replacing {what} by {new.id}, named {name}"):
        try:
            if old is not None:
                store.delete(old)
            return store.rename(new, name)
        except CloudError as exc:
            raise CloudError(
                f"{exc}; the new image {new.id} exists as {new.name}: run build-image "
                "--provider yandex --force again to finish the swap"
            ) from None
