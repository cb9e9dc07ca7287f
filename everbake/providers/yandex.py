"""Yandex Cloud: yandex source vars and the plugin's field list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everbake import naming
from everbake.fingerprint import Fingerprints
from everbake.providers.base import BuildSettings, Provider
from everbake.spec import ImageSpec

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


class Yandex(Provider):
    name = "yandex"
    layers = ("base", "image")
    ssh_username = "debian"
    needs_pinned_agent = True

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
    ) -> dict[str, Any]:
        build = spec.build.yandex
        values = self.cloud_vars(spec, fps, layer, paths, settings, build)
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
