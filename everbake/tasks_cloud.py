"""Image retirement: gc-images (old images of a family, on a cloud or in dist/local)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from everbake.errors import EverbakeError
from everbake.providers import get
from everbake.taskutil import settings_of, task


@task(
    help={
        "provider": "gcp, yandex or local (dist/local/)",
        "image": "image spec name (images/<name>.toml) or path",
        "keep": "how many of the newest images to keep untouched (default 3)",
        "dry-run": "only list what would happen",
        "layer": "image (default) or base: the spec's base family (local: every base cache)",
        "delete-after-days": "gcp: delete images deprecated at least this long (default 30)",
        "dist": "where published records live (default: the configured dist dir, dist)",
    }
)
def gc_images(
    c,
    provider,
    image,
    keep=3,
    dry_run=False,
    layer="image",
    delete_after_days=None,
    dist=None,
):
    """Retire old images of a family; never the newest N nor any published one."""
    from everbake.gc_images import gc_family  # the flows load on use: --list stays fast

    try:
        keep_n = int(keep)
        days = None if delete_after_days is None else float(delete_after_days)
    except ValueError:
        raise EverbakeError("--keep and --delete-after-days take numbers") from None
    settings = settings_of(c)
    if dist:
        settings = dataclasses.replace(settings, dist_dir=Path(dist).absolute())
    gc_family(get(provider), image, keep_n, bool(dry_run), settings, layer, days)
