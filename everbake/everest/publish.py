"""publish-resource: check the resource config against its image, then publish it.

Order: find the build record (the one named, and the newest of the spec), build
the config, check it (schema, fingerprint, disk, task slots, preemptible
settings, metadata secrets, the image still in its cloud): any mismatch stops
here, before anything is written or sent. Then, with an Everest URL and a
resource endpoint, fetch what is there, show the diff and send only what differs
(create: ``POST <endpoint>``; update: ``PATCH <endpoint>/<name>`` with a JSON
merge patch, RFC 7396); without an endpoint, show the fields to enter in the web
UI. Last, write the published record ``<dist>/resources/<provider>/<image>.json``
(the settings' dist dir, where gc-images and ``build-image --force`` read them)
or ``--output``. A dry run shows the diff and changes nothing.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake.errors import CredentialsError
from everbake.everest import resource
from everbake.everest.client import EverestClient, EverestError, EverestNotFound, base_url
from everbake.everest.diff import diff_lines, flat, merge_patch
from everbake.everest.token import client_for
from everbake.files import read_json_object, write_json
from everbake.fingerprint import fingerprints
from everbake.providers import get
from everbake.providers.cloud import CloudProvider
from everbake.records import find_build, newest_record, settings_with
from everbake.settings import Settings
from everbake.ui import say

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Published:
    config: dict[str, Any]
    action: str  # created, updated, unchanged, would create, would update, web UI
    diff: list[str]
    path: Path | None  # the published record written (None on a dry run)
    web_ui: list[str] = field(default_factory=list)  # fields to enter by hand
    removed: list[Path] = field(default_factory=list)  # superseded records


@dataclass(frozen=True)
class Target:
    """Where to send the config: an Everest URL and the resource endpoint path."""

    url: str = ""
    endpoint: str = ""

    @property
    def sends(self) -> bool:
        return bool(self.url and self.endpoint)


def publish_resource(
    image: str,
    provider: str,
    *,
    target: Target = Target(),
    dry_run: bool = False,
    output: Path | None = None,
    images_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> Published:
    """Check, then send (when ``target.sends``) and record the resource config of
    ``image`` (a spec name or a built image name) on ``provider``; ``images_dir``
    overrides the settings' one."""
    env = os.environ if env is None else env
    settings = settings_with(settings, images_dir)
    spec, record = find_build(image, provider, settings)
    newest = newest_record(spec, provider, settings)
    config = resource.build_config(spec, provider, record)  # a local provider says no
    resource.check(config, spec, newest or record, fingerprints(spec).image)
    check_image_exists(provider, record, env)
    dist = settings.dist_root(spec) / "resources" / provider
    path = output or dist / f"{config['image']['name']}.json"
    if target.sends:
        client = client_for(target.url, env)
        action, diff = sync(client, endpoint_path(target.endpoint), config, dry_run)
        fields: list[str] = []
    else:
        previous = _previous_record(dist, config["name"])
        diff = diff_lines(previous, config)
        action = "would write" if dry_run else "web UI"
        fields = web_ui_fields(config, target.url)
    if dry_run:
        return Published(config, action, diff, None, fields)
    write_json(path, config)
    removed = [] if output else _drop_superseded(dist, config["name"], path)
    return Published(config, action, diff, path, fields, removed)


# ------------------------------------------------------------------ records


def _previous_record(folder: Path, name: str) -> dict[str, Any] | None:
    """The newest published record of resource ``name`` in ``folder``."""
    found = []
    for path in folder.glob("*.json"):
        data = read_json_object(path)
        if data.get("name") == name:
            found.append((path.stat().st_mtime, data))
    return max(found, key=lambda item: item[0])[1] if found else None


def _drop_superseded(folder: Path, name: str, keep: Path) -> list[Path]:
    """Records of the same resource naming older images: no longer what is published."""
    removed = []
    for path in sorted(folder.glob("*.json")):
        if path != keep and read_json_object(path).get("name") == name:
            path.unlink()
            removed.append(path)
    return removed


# --------------------------------------------------------------- the image


def check_image_exists(provider: str, record: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """Look the image up through the provider's store when credentials exist; say
    plainly that it was not checked when they do not."""
    cloud = get(provider)
    name = record.get("image_name") or record.get("image")
    if not isinstance(cloud, CloudProvider):  # no store to ask (resource_fields said no)
        say(f"image {name}: not checked in {provider} (no image store)")
        return
    hint = cloud.credentials_hint(env)
    if not hint.ok:
        say(f"image {name}: not checked in {provider} (no credentials: {hint.detail})")
        return
    location = str(record.get(cloud.place.key) or "")
    try:
        store = cloud.open_store(location, env)
        found = store.find_by_fingerprint(
            record.get("fingerprints", {}).get("image", ""), record.get("family")
        )
    except CredentialsError as exc:
        say(f"image {name}: not checked in {provider} ({exc})")
        return
    if found is None:
        raise resource.ResourceConfigError(
            f"image.name: {name} no longer exists in {provider} {location}; rebuild it: "
            f"invoke build-image --provider {provider} --image {record.get('spec')}"
        )
    say(f"image {name}: exists in {provider} {location}")


# ------------------------------------------------------------ the endpoint


def endpoint_path(endpoint: str) -> str:
    text = endpoint.strip().rstrip("/")
    if not text.startswith("/") or "://" in text or ".." in text.split("/"):
        raise EverestError(
            f"everest.resource_endpoint {endpoint!r}: give a path on the Everest server, "
            "e.g. /api/everbake/resources"
        )
    return text


def sync(
    client: EverestClient, endpoint: str, config: Mapping[str, Any], dry_run: bool
) -> tuple[str, list[str]]:
    """Create or update the resource at ``endpoint``, sending only what differs."""
    item = f"{endpoint}/{urllib.parse.quote(config['name'], safe='')}"
    try:
        current = client.get_json(item)
    except EverestNotFound:
        current = None
    diff = diff_lines(current, config)
    if current is None:
        if not dry_run:
            client.send_json("POST", endpoint, config)
        return ("would create" if dry_run else "created"), diff
    if not diff:
        return "unchanged", diff
    if not dry_run:
        client.send_json("PATCH", item, merge_patch(current, config), content_type=MERGE_PATCH)
    return ("would update" if dry_run else "updated"), diff


def web_ui_fields(config: Mapping[str, Any], url: str) -> list[str]:
    """What to enter at <url>/resources/new (Everest's resource form is not public:
    every field of the config, flattened)."""
    where = f"{base_url(url)}/resources/new" if url else "<your Everest>/resources/new"
    lines = [f"create or edit the resource in the web UI ({where}) with these fields:"]
    lines += [f"  {key} = {value}" for key, value in flat(config).items()]
    lines.append(
        "  then put the agent token Everest shows into the VM metadata key(s) whose "
        f"value_from is {resource.FROM_EVEREST}"
    )
    return lines
