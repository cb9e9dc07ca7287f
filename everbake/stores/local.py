"""Local images and base caches as stores, so gc-images retires them as it does
cloud images.

A local image is dist/local/<family>-<12 hex>.tar.zst (.tar.gz or .tar, as the
spec's build.local.compression says); run-local's read-only extracted copies of
it (<name>.<size>-<mtime>.rootfs, beside the tarball) go with it. A base cache
is <cache>/base-<fingerprint>.tar.zst with its extracted <name>.rootfs; it is
shared by every spec with that base, so all of them form one family. Creation
time is the tarball's mtime. There is no deprecation: like Yandex, what is
beyond the newest N is deleted.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from everbake.errors import BuildError, EverbakeError
from everbake.localbuild.chroot import remove_tree
from everbake.localbuild.export import split_suffix
from everbake.localbuild.overlay import in_use_as_lower
from everbake.stores import CloudImage, newest_first

BASE_SUFFIX = ".tar.zst"  # base caches are always zstd (localbuild.plan.base_cache_name)


class LocalImageStore:
    provider = "local"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def list_family(self, family: str) -> list[CloudImage]:
        # The exact pattern keeps out families that share the prefix (<family>-extra-...).
        return self._listed(f"{family}-*.tar*", rf"{re.escape(family)}-[0-9a-f]{{12}}", family)

    def _listed(self, glob: str, name_re: str, family: str) -> list[CloudImage]:
        images = []
        for path in self.directory.glob(glob):
            name, suffix = split_suffix(path.name)
            if not suffix or not re.fullmatch(name_re, name):
                continue
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue  # removed while we looked
            created = datetime.fromtimestamp(mtime, timezone.utc).isoformat()
            images.append(CloudImage(name, str(path), family, {}, created, None))
        return newest_first(images)

    def _copies(self, name: str) -> list[Path]:
        """Extracted trees that belong to the tarball ``name`` (run-local's copies)."""
        return sorted(self.directory.glob(f"{name}.*.rootfs"))

    def latest_in_family(self, family: str) -> CloudImage | None:
        images = self.list_family(family)
        return images[0] if images else None

    def find_by_fingerprint(self, fingerprint: str, family: str | None = None) -> CloudImage | None:
        if family is None:
            raise EverbakeError("local images are found by family and fingerprint together")
        wanted = f"{family}-{fingerprint[:12]}"
        return next((i for i in self.list_family(family) if i.name == wanted), None)

    def deprecate(
        self, image: CloudImage, replacement: CloudImage | None, state: str = "DEPRECATED"
    ) -> None:
        raise EverbakeError("local images have no deprecation; they are deleted")

    def delete(self, image: CloudImage) -> None:
        """Remove the extracted copies first, so a refusal leaves the image whole."""
        copies = self._copies(image.name)
        busy = [copy for copy in copies if in_use_as_lower(copy)]
        if busy:
            raise BuildError(
                f"{busy[0]} is in use by a build or run-local in progress; let it finish, "
                "then run gc-images again"
            )
        for copy in copies:
            remove_tree(copy)
        Path(image.id).unlink(missing_ok=True)  # the tarball, as listed


class LocalBaseCaches(LocalImageStore):
    """The base layer caches of local builds (see the module docstring)."""

    provider = "local"

    def list_family(self, family: str) -> list[CloudImage]:
        return self._listed(f"base-*{BASE_SUFFIX}", r"base-[0-9a-f]{64}", family)

    def _copies(self, name: str) -> list[Path]:
        extracted = self.directory / f"{name}.rootfs"
        return [extracted] if extracted.exists() else []
