"""Where a cloud image is built: the GCP project or the Yandex folder.

The spec's ``build.gcp.project`` / ``build.yandex.folder_id`` wins; otherwise the
first set environment variable of the provider (the ones gcloud and yc use).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from everbake.errors import CredentialsError

if TYPE_CHECKING:
    from everbake.spec import ImageSpec


@dataclass(frozen=True)
class Place:
    """How one provider names the place it builds in, and how a user sets it."""

    key: str  # the build record's field, and the placeholder in an export
    noun: str  # what messages call it
    setting: str  # the image spec's field
    variables: tuple[str, ...]  # the environment's, first set wins
    fix: str  # one line for `invoke check`
    packer_var: str  # the template variable that receives it


PLACES = {
    "gcp": Place(
        "project",
        "project",
        "build.gcp.project",
        ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),
        "export GOOGLE_CLOUD_PROJECT=<project>  (or set build.gcp.project in the image spec)",
        "project_id",
    ),
    "yandex": Place(
        "folder_id",
        "folder",
        "build.yandex.folder_id",
        ("YC_FOLDER_ID",),
        "export YC_FOLDER_ID=$(yc config get folder-id)  "
        "(or set build.yandex.folder_id in the image spec)",
        "folder_id",
    ),
}


def packer_var(provider: str) -> str | None:
    """The template variable holding where ``provider`` builds (None: the local one)."""
    return PLACES[provider].packer_var if provider in PLACES else None


def from_spec(spec: ImageSpec, provider: str) -> str:
    """The project/folder the spec names ('' when it leaves it to the environment)."""
    return spec.build.gcp.project if provider == "gcp" else spec.build.yandex.folder_id


def env_variable(provider: str, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(name, value) of the provider's first set variable, None when none is set."""
    env = os.environ if env is None else env
    for name in PLACES[provider].variables:
        if env.get(name):
            return name, env[name]
    return None


def from_env(provider: str, env: Mapping[str, str] | None = None) -> str:
    """The project/folder the environment names ('' when it names none)."""
    found = env_variable(provider, env)
    return found[1] if found else ""


def find(spec: ImageSpec, provider: str, env: Mapping[str, str] | None = None) -> str:
    """The spec's project/folder, else the environment's ('' when neither names one)."""
    return from_spec(spec, provider) or from_env(provider, env)


def missing(provider: str) -> str:
    """The one-line message for a store opened with no project/folder."""
    place = PLACES[provider]
    return (
        f"{provider}: no {place.noun}: set {place.setting} in the image spec or export "
        f"{place.variables[0]}=<{place.key}>"
    )


def location_of(spec: ImageSpec, provider: str, env: Mapping[str, str]) -> str:
    """Like `find`, but a missing project/folder is a one-line CredentialsError."""
    found = find(spec, provider, env)
    if found:
        return found
    place = PLACES[provider]
    raise CredentialsError(
        f"{provider}: no {place.noun} to build {spec.name} in: export "
        f"{place.variables[0]}=<{place.key}> or set {place.setting} in {spec.source_path}"
    )
