"""Cloud image stores: one small interface over each provider's official SDK.

The SDKs are imported inside the store constructors, never at module import:
``google.cloud.compute_v1`` alone costs about 1.5 s, and ``invoke --list`` or a
local build must not pay for it.

Lookups match the fingerprint label (everbake.labels: its key and length, the
one definition everbake.naming writes with).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

from everbake.labels import FINGERPRINT_LABEL


@dataclass(frozen=True)
class CloudImage:
    name: str
    id: str
    family: str
    labels: Mapping[str, str]
    created: str  # RFC 3339, as the provider reports it
    deprecated: str | None  # deprecation state (GCE: DEPRECATED, OBSOLETE, DELETED) or None
    # When it was deprecated (RFC 3339); set by our own deprecate(), may be
    # missing on images deprecated by other tools.
    deprecated_at: str | None = field(default=None, compare=False)

    @property
    def fingerprint_label(self) -> str | None:
        return self.labels.get(FINGERPRINT_LABEL)


class ImageStore(Protocol):
    """What a build, plan and gc need from a provider; 'not found' is None.

    Every other failure raises CloudError or CredentialsError: a lookup error
    must never be mistaken for a missing image.
    """

    provider: str

    def find_by_fingerprint(self, fingerprint: str, family: str | None = None) -> CloudImage | None:
        """The newest image labelled with ``fingerprint`` (in ``family`` if given)."""
        ...

    def latest_in_family(self, family: str) -> CloudImage | None:
        """The image a new VM from ``family`` would get (GCE: newest not deprecated)."""
        ...

    def list_family(self, family: str) -> list[CloudImage]:
        """All images of ``family``, newest first."""
        ...

    def deprecate(
        self, image: CloudImage, replacement: CloudImage | None, state: str = "DEPRECATED"
    ) -> None: ...

    def delete(self, image: CloudImage) -> None: ...


@runtime_checkable
class BuildVmStore(Protocol):
    """A cloud store that can confirm a lost build VM through the cloud's API."""

    def build_vm_lost(self, zone: str, instance: str) -> bool:
        """Whether the cloud took the build VM ``instance`` (its name) in ``zone``."""
        ...


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (accepts 'Z' on Python 3.10 too)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def newest_first(images: list[CloudImage]) -> list[CloudImage]:
    return sorted(images, key=lambda image: parse_time(image.created), reverse=True)
