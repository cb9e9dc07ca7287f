"""Local images as a store, so gc-images retires them as it does cloud images.

A local image is dist/local/<family>-<12 hex>.tar.zst; run-local's read-only
extracted copies of it (<name>.<size>-<mtime>.rootfs, beside the tarball) go
with it. Its creation time is the tarball's mtime. There is no deprecation:
like Yandex, images beyond the newest N are deleted.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from everbake.errors import BuildError, EverbakeError
from everbake.stores import CloudImage, newest_first

SUFFIX = ".tar.zst"


class LocalImageStore:
    provider = "local"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def list_family(self, family: str) -> list[CloudImage]:
        name_re = re.compile(rf"{re.escape(family)}-[0-9a-f]{{12}}")
        images = []
        for path in self.directory.glob(f"{family}-*{SUFFIX}"):
            name = path.name.removesuffix(SUFFIX)
            if not name_re.fullmatch(name):
                continue  # another family that shares the prefix (e.g. <family>-base-...)
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue  # removed while we looked
            created = datetime.fromtimestamp(mtime, timezone.utc).isoformat()
            images.append(CloudImage(name, str(path), family, {}, created, None))
        return newest_first(images)

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
        from everbake.localbuild.chroot import remove_tree
        from everbake.localbuild.overlay import in_use_as_lower

        copies = sorted(self.directory.glob(f"{image.name}.*.rootfs"))
        busy = [copy for copy in copies if in_use_as_lower(copy)]
        if busy:
            raise BuildError(
                f"{busy[0]} is in use by a run-local in progress; let it finish, then run "
                "gc-images again"
            )
        for copy in copies:
            remove_tree(copy)
        (self.directory / f"{image.name}{SUFFIX}").unlink(missing_ok=True)
