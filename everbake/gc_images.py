"""gc-images: retire the old images of a spec's family on one provider.

The provider names the store, the family and its retirement policy
(`Provider.gc_target`, `Provider.retirement`); everbake.retirement (the policy)
plans purely and applies through the store.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import datetime, timezone

from everbake import retirement, ui
from everbake.errors import EverbakeError
from everbake.fingerprint import fingerprints
from everbake.localbuild.step_plan import base_cache_name
from everbake.providers import Provider
from everbake.settings import Settings
from everbake.spec import list_images

LAYERS = ("image", "base")


def gc_family(
    provider: Provider,
    image: str,
    keep: int,
    dry_run: bool,
    settings: Settings | None = None,
    layer: str = "image",
    delete_after_days: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[retirement.Action]:
    """Plan (and unless ``dry_run`` apply) the retirement of old images of a spec."""
    chosen = provider
    retirement.check_keep(keep)  # before any listing
    if layer not in LAYERS:
        raise EverbakeError(f"--layer {layer}: choose one of {', '.join(LAYERS)}")
    settings = settings or Settings()
    environ = os.environ if environ is None else environ
    spec = settings.load_spec(image)
    dist = settings.dist_root(spec)
    policy = chosen.retirement()
    if delete_after_days is not None:
        policy = dataclasses.replace(policy, delete_after_days=float(delete_after_days))
    target = chosen.gc_target(spec, layer, settings, environ)
    store, family = target.store, target.family
    protected: Mapping[str, str] | set[str]
    if target.shared_bases:
        protected = bases_in_use(settings)
    else:
        protected = retirement.protected_images(dist, chosen.name)
    with ui.phase(f"{chosen.name}: listing images of family {family}"):
        images = store.list_family(family)
    actions = retirement.plan(
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
        ui.say(f"{chosen.name}: nothing to retire in family {family}")
    elif dry_run:
        ui.say(f"dry run: {len(changes)} change(s) listed above, nothing done")
    else:
        with ui.phase(f"{chosen.name}: retiring {len(changes)} image(s) of family {family}"):
            retirement.apply(store, changes, say=ui.say)
    return actions


def bases_in_use(settings: Settings) -> dict[str, str]:
    """Base cache name -> why it is kept: the current base of each spec in images/."""
    kept: dict[str, str] = {}
    for name in list_images(settings.images_dir):
        spec = settings.load_spec(name)
        cache = base_cache_name(fingerprints(spec).base).removesuffix(".tar.zst")
        kept[cache] = f"{kept[cache]}, {name}" if cache in kept else f"the current base of {name}"
    return kept
