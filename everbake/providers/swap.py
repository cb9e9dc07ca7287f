"""Replace an image by one of the same fingerprint without ever leaving none: build
the new one under a temporary name, and only once it exists delete the old one and
give the new one its name (Yandex: rename; GCE: copy, since GCE images cannot be
renamed). googlecompute's own `-force` deletes the old image BEFORE it creates the
new one (step_create_image.go), and Yandex names are unique, so neither cloud can
build over the old image directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from everbake.errors import CloudError
from everbake.stores import CloudImage, ImageStore
from everbake.ui import phase

TEMPORARY_SUFFIX = "-new"  # fits: families leave room for "-base-" + 12 hex


class Renaming(Protocol):
    def rename(self, image: CloudImage, name: str) -> CloudImage: ...


def replace_by_swap(
    provider: str,
    store: ImageStore,
    existing: CloudImage,
    name: str,
    family: str,
    build: Callable[..., tuple[Any, dict[str, Any], Any]],
) -> tuple[Any, dict[str, Any], Any, CloudImage | None]:
    """Build under a temporary name and swap only once the new image exists, so a
    failed rebuild leaves the old image in place."""
    temporary = name + TEMPORARY_SUFFIX
    old: CloudImage | None = existing
    if existing.name == temporary:
        old = _finish_swap(provider, store, family, existing, name)
    _drop_leftover(provider, store, family, temporary)
    image, entry, attempt = build(image_name=temporary)
    return _swap_in(provider, store, old, image, name), entry, attempt, old


def _drop_leftover(provider: str, store: ImageStore, family: str, temporary: str) -> None:
    """Delete a temporary image an interrupted replacement left behind (never published)."""
    for image in store.list_family(family):
        if image.name == temporary:
            with phase(
                f"{provider}: deleting {image.name} ({image.id}), left by an earlier --force"
            ):
                store.delete(image)


def _finish_swap(
    provider: str, store: ImageStore, family: str, new: CloudImage, name: str
) -> CloudImage:
    """An earlier replacement stopped after building ``new`` (the newest image of the
    fingerprint, still under its temporary name): finish it before building again."""
    olds = [i for i in store.list_family(family) if i.name == name]
    return _swap_in(provider, store, olds[0] if olds else None, new, name)


def _swap_in(
    provider: str, store: ImageStore, old: CloudImage | None, new: CloudImage, name: str
) -> CloudImage:
    """Delete ``old``, then give ``new`` its name; say what is left when a step fails."""
    renaming: Renaming = store  # type: ignore[assignment]  # both clouds' stores rename
    what = f"{old.name} ({old.id})" if old else "nothing"
    with phase(f"{provider}: replacing {what} by {new.id}, named {name}"):
        try:
            if old is not None:
                store.delete(old)
            return renaming.rename(new, name)
        except CloudError as exc:
            raise CloudError(
                f"{exc}; the new image {new.id} exists as {new.name}: run build-image "
                f"--provider {provider} --force again to finish the swap"
            ) from None
