"""Image retirement: gc-images (old images of a family, on a cloud or in dist/local)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from everbake import gc, ui
from everbake.errors import EverbakeError
from everbake.location import from_spec
from everbake.taskutil import task

LAYERS = ("image", "base")


def gc_family(
    provider: str,
    image: str,
    keep: int,
    dry_run: bool,
    dist: Path,
    layer: str = "image",
    delete_after_days: float | None = None,
) -> list[gc.Action]:
    """Plan (and unless ``dry_run`` apply) the retirement of old images of a spec."""
    from everbake import naming
    from everbake.localbuild.plan import cache_dir_in
    from everbake.spec import load_spec
    from everbake.stores import ImageStore
    from everbake.stores.factory import PROVIDERS, open_store
    from everbake.stores.local import LocalBaseCaches, LocalImageStore

    if provider not in (*PROVIDERS, "local"):
        raise EverbakeError(
            f"--provider {provider}: unknown provider; choose one of {', '.join(PROVIDERS)}, local"
        )
    gc.check_keep(keep)  # before any listing
    if layer not in LAYERS:
        raise EverbakeError(f"--layer {layer}: choose one of {', '.join(LAYERS)}")
    spec = load_spec(image)
    family = naming.family(spec, layer)
    policy = gc.POLICIES[provider]
    if delete_after_days is not None:
        policy = gc.Policy(policy.deprecate_first, float(delete_after_days))
    protected: Mapping[str, str] | set[str] = gc.protected_images(dist, provider)
    store: ImageStore
    if provider == "local" and layer == "base":
        # Base caches are shared by specs with the same base: one family of all of them.
        family = "base caches"
        store = LocalBaseCaches(cache_dir_in(dist))
        protected = bases_in_use()
    elif provider == "local":
        store = LocalImageStore(dist / "local")
    else:
        store = open_store(provider, from_spec(spec, provider))
    with ui.phase(f"{provider}: listing images of family {family}"):
        images = store.list_family(family)
    actions = gc.plan(
        images,
        family=family,
        keep=keep,
        protected=protected,
        now=datetime.now(timezone.utc),
        policy=policy,
    )
    for action in actions:
        print(action.describe())
    changes = [a for a in actions if a.kind != "keep"]
    if not changes:
        ui.say(f"{provider}: nothing to retire in family {family}")
    elif dry_run:
        ui.say(f"dry run: {len(changes)} change(s) listed above, nothing done")
    else:
        with ui.phase(f"{provider}: retiring {len(changes)} image(s) of family {family}"):
            gc.apply(store, changes, say=ui.say)
    return actions


def bases_in_use() -> dict[str, str]:
    """Base cache name -> why it is kept: the current base of each spec in images/."""
    from everbake.fingerprint import fingerprints
    from everbake.localbuild.plan import base_cache_name
    from everbake.spec import list_images, load_spec

    kept: dict[str, str] = {}
    for name in list_images():
        cache = base_cache_name(fingerprints(load_spec(name)).base).removesuffix(".tar.zst")
        kept[cache] = f"{kept[cache]}, {name}" if cache in kept else f"the current base of {name}"
    return kept


@task(
    help={
        "provider": "gcp, yandex or local (dist/local/)",
        "image": "image spec name (images/<name>.toml) or path",
        "keep": "how many of the newest images to keep untouched (default 3)",
        "dry-run": "only list what would happen",
        "layer": "image (default) or base: the spec's base family (local: every base cache)",
        "delete-after-days": "gcp: delete images deprecated at least this long (default 30)",
        "dist": "where published records live (default dist)",
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
    dist="dist",
):
    """Retire old images of a family; never the newest N nor any published one."""
    try:
        keep_n = int(keep)
        days = None if delete_after_days is None else float(delete_after_days)
    except ValueError:
        raise EverbakeError("--keep and --delete-after-days take numbers") from None
    gc_family(provider, image, keep_n, bool(dry_run), Path(dist), layer, days)
