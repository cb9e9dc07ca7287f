"""The Everest resource config: a documented JSON document built from data alone.

``build_config(spec, provider, record)`` renders the spec's ``[resource]`` table
and the image's build record into the document that ``resource_config.schema.json``
describes (README "From image to Everest" lists the fields). Each provider adds
its own fields (``Provider.resource_fields``). ``problems(...)`` checks a config
against its image and spec and returns one line per mismatch, naming the field
and the fix. Nothing here touches the network or writes a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources as package_files
from typing import Any

import jsonschema

from everbake import naming
from everbake.errors import EverbakeError
from everbake.providers import get as get_provider
from everbake.spec import ImageSpec

KIND = "everbake/resource-config"
VERSION = 1
SCHEMA_FILE = "resource_config.schema.json"
# Where the value of a metadata key comes from (never the value itself).
FROM_EVEREST = "everest-agent-token"  # the token Everest hands out for the resource
# Cloud VMs that may be preempted live at most 24 h on GCE and Yandex alike.
PREEMPTIBLE_MAX_IDLE_MINUTES = 24 * 60


class ResourceConfigError(EverbakeError):
    """A resource config that does not match its image, or breaks the schema."""


def resource_name(spec: ImageSpec, provider: str) -> str:
    """Stable across rebuilds, so a new image updates the same Everest resource."""
    return f"{spec.family}-{provider}"


def build_config(spec: ImageSpec, provider: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The resource config for the image of ``record`` (a build record of ``provider``)."""
    fields = get_provider(provider).resource_fields(spec, record)
    canonical = record.get("spec_canonical") or spec.to_canonical()
    image = {
        "name": record.get("image_name") or record.get("image"),
        "id": str(record.get("image_id") or ""),
        "family": record.get("family") or naming.family(spec),
        "fingerprint": record.get("fingerprints", {}).get("image", ""),
        "runtime_version": naming.runtime_version(spec),
        "solvers": {s["name"]: s["version"] for s in canonical.get("solvers", [])},
        **fields.pop("image", {}),
    }
    resource = spec.resource
    config: dict[str, Any] = {
        "kind": KIND,
        "version": VERSION,
        "name": resource_name(spec, provider),
        "provider": provider,
        "spec": spec.name,
        "image": image,
        "disk": {"size_gb": resource.disk_size_gb},
        "scheduling": {
            "preemptible": resource.preemptible,
            "max_instances": resource.max_instances,
            "idle_timeout_minutes": resource.idle_timeout_minutes,
            "task_slots": resource.task_slots,
            "oversubscribe": resource.oversubscribe,
            **fields.pop("scheduling", {}),
        },
        "metadata": metadata_keys(spec),
        **fields,
    }
    return config


def metadata_keys(spec: ImageSpec) -> list[dict[str, str]]:
    """Every metadata key the image reads at boot or task time, and where its value
    comes from: the agent token from Everest, the others from the named variable."""
    entries = []
    for name, secret in sorted(spec.secrets.items()):
        if secret.mode != "metadata":
            continue
        if name == spec.agent.token_secret:
            source, reader = FROM_EVEREST, "the agent's unit at boot"
        else:
            source = f"env:{secret.env}" if secret.env else "operator"
            reader = "the task at run time"
        entries.append(
            {"key": secret.metadata_key, "secret": name, "value_from": source, "read_by": reader}
        )
    return entries


# ------------------------------------------------------------------ schema


@cache
def schema() -> dict[str, Any]:
    text = package_files.files("everbake.everest").joinpath(SCHEMA_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schema_problems(config: Any) -> list[str]:
    """One line per schema violation, naming the field (dotted) and what is wrong."""
    validator = jsonschema.Draft202012Validator(schema())
    lines = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        lines.append(f"resource config field {where}: {_short(err.message)}")
    return lines


def _short(text: str) -> str:
    return text if len(text) <= 160 else text[:157] + "..."


# ------------------------------------------------------------------ checks


def problems(
    config: Mapping[str, Any],
    spec: ImageSpec,
    record: Mapping[str, Any],
    current_fingerprint: str,
) -> list[str]:
    """Mismatches between ``config``, the newest build ``record`` and the spec as it is
    now (``current_fingerprint``); each is one line naming the field and the fix."""
    found = list(schema_problems(config))
    provider = str(config.get("provider", ""))
    image = config.get("image") or {}
    rebuild = f"invoke build-image --provider {provider} --image {spec.name}"
    built = record.get("fingerprints", {}).get("image", "")
    if image.get("fingerprint") != built:
        found.append(
            f"image.fingerprint {str(image.get('fingerprint'))[:12]} is not the newest build's "
            f"({built[:12]}, {record.get('image_name') or record.get('image')}); publish "
            "from the newest build record"
        )
    elif built != current_fingerprint:
        found.append(
            f"image.fingerprint: {image.get('name')} was built from an older {spec.name} spec "
            f"({built[:12]}, now {current_fingerprint[:12]}); rebuild first: {rebuild}"
        )
    min_disk = image.get("min_disk_size_gb")
    size = (config.get("disk") or {}).get("size_gb")
    if isinstance(min_disk, int) and isinstance(size, int) and size < min_disk:
        found.append(
            f"disk.size_gb {size} is below the image's minimum of {min_disk} GB; set "
            f"resource.disk_size_gb >= {min_disk} in the image spec"
        )
    found.extend(_scheduling_problems(config))
    found.extend(_metadata_problems(config, spec))
    return found


def _scheduling_problems(config: Mapping[str, Any]) -> list[str]:
    found = []
    scheduling = config.get("scheduling") or {}
    cores = (config.get("machine") or {}).get("cores")
    slots = scheduling.get("task_slots")
    oversubscribe = scheduling.get("oversubscribe") is True
    if isinstance(cores, int) and isinstance(slots, int) and slots > cores and not oversubscribe:
        found.append(
            f"scheduling.task_slots {slots} is more than the machine's {cores} cores; lower "
            "resource.task_slots, choose a larger machine in [resource.<provider>], or set "
            "resource.oversubscribe = true"
        )
    if scheduling.get("preemptible"):
        idle = scheduling.get("idle_timeout_minutes")
        if isinstance(idle, int) and idle >= PREEMPTIBLE_MAX_IDLE_MINUTES:
            found.append(
                f"scheduling.idle_timeout_minutes {idle}: preemptible VMs are stopped within "
                f"24 h anyway; set resource.idle_timeout_minutes below "
                f"{PREEMPTIBLE_MAX_IDLE_MINUTES}"
            )
        if scheduling.get("automatic_restart") is True:
            found.append(
                "scheduling.automatic_restart: a preemptible VM cannot restart automatically; "
                "set it false"
            )
        maintenance = scheduling.get("on_host_maintenance")
        if maintenance not in (None, "TERMINATE"):
            found.append(
                f"scheduling.on_host_maintenance {maintenance}: preemptible VMs need TERMINATE"
            )
    return found


def _metadata_problems(config: Mapping[str, Any], spec: ImageSpec) -> list[str]:
    listed = {
        entry.get("secret"): entry.get("key")
        for entry in config.get("metadata") or []
        if isinstance(entry, Mapping)
    }
    found = []
    for name, secret in sorted(spec.secrets.items()):
        if secret.mode != "metadata":
            continue
        if name not in listed:
            found.append(
                f"metadata: secret {name} (key {secret.metadata_key}) is not accounted for; "
                "every metadata-mode secret must be listed with where its value comes from"
            )
        elif listed[name] != secret.metadata_key:
            found.append(
                f"metadata: secret {name} is listed under key {listed[name]}, the image reads "
                f"{secret.metadata_key}; use the spec's metadata_key"
            )
    unknown = sorted(
        str(n)
        for n in listed
        if str(n) not in spec.secrets or spec.secrets[str(n)].mode != "metadata"
    )
    if unknown:
        found.append(
            f"metadata: {', '.join(unknown)} is not a metadata-mode secret of {spec.name}; "
            "remove it or fix the spec's [secrets]"
        )
    return found


def check(
    config: Mapping[str, Any],
    spec: ImageSpec,
    record: Mapping[str, Any],
    current_fingerprint: str,
) -> None:
    """Raise ResourceConfigError with one line per mismatch; nothing when all agree."""
    found = problems(config, spec, record, current_fingerprint)
    if found:
        raise ResourceConfigError("\n".join(found))
