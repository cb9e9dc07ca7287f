"""build-image over several images and providers: what CI runs on every push.

An unchanged fingerprint costs one lookup, so building "all" images on every
push rebuilds exactly what changed (a solver version, a script, the runtime).
Every spec is loaded before anything is built, so one bad spec fails the run
at once; the first failed build stops the rest (what was done is said first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from everbake.bake import BuildOutcome, build_spec
from everbake.errors import EverbakeError
from everbake.pinagent import require_pinned_agents
from everbake.providers import Provider
from everbake.settings import ALL, Settings
from everbake.ui import say

__all__ = ["ALL", "build_images", "summary"]


def build_images(
    names: Sequence[str],
    providers: Sequence[Provider],
    force: bool = False,
    *,
    images_dir: Path | None = None,
    replace_published: bool = False,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[BuildOutcome]:
    """Build each image on each provider in turn; ``names`` may be ["all"]."""
    if not names or not providers:
        raise EverbakeError(
            "--image and --provider need at least one name each (--image all builds every spec)"
        )
    chosen = list(providers)
    settings = settings or Settings()
    if images_dir is not None:
        settings = dataclasses.replace(settings, images_dir=images_dir)
    specs = settings.load_specs(names)
    require_pinned_agents(specs, chosen)  # before any build starts
    outcomes: list[BuildOutcome] = []
    try:
        for spec in specs:
            for provider in chosen:
                outcomes.append(
                    build_spec(
                        spec,
                        provider,
                        force,
                        settings=settings,
                        environ=environ,
                        replace_published=replace_published,
                    )
                )
    finally:
        if len(specs) * len(chosen) > 1:
            say(summary(outcomes))
    return outcomes


def summary(outcomes: Sequence[BuildOutcome]) -> str:
    built = [f"{o.provider}:{o.image}" for o in outcomes if not o.up_to_date]
    current = [f"{o.provider}:{o.image}" for o in outcomes if o.up_to_date]
    return (
        f"built {len(built)} ({', '.join(built) or 'none'}); "
        f"up to date {len(current)} ({', '.join(current) or 'none'})"
    )
