"""build-image over several images and providers: what CI runs on every push.

An unchanged fingerprint costs one lookup, so building "all" images on every
push rebuilds exactly what changed (a solver version, a script, the runtime).
Every spec is loaded before anything is built, so one bad spec fails the run
at once; the first failed build stops the rest (what was done is said first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from everbake.build import BuildOutcome, build_spec, check_provider
from everbake.errors import EverbakeError, SpecError
from everbake.pinagent import require_pinned_agents
from everbake.spec import list_images, load_spec
from everbake.ui import say

ALL = "all"


def build_images(
    names: Sequence[str],
    providers: Sequence[str],
    force: bool = False,
    *,
    images_dir: Path | None = None,
    replace_published: bool = False,
) -> list[BuildOutcome]:
    """Build each image on each provider in turn; ``names`` may be ["all"]."""
    if not names or not providers:
        raise EverbakeError(
            "--image and --provider need at least one name each (--image all builds every spec)"
        )
    for provider in providers:
        check_provider(provider)
    wanted = list_images(images_dir) if ALL in names else list(names)
    specs, problems = [], []
    for name in wanted:
        try:
            specs.append(load_spec(name, images_dir))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    require_pinned_agents(specs, providers)  # before any build starts
    outcomes: list[BuildOutcome] = []
    try:
        for spec in specs:
            for provider in providers:
                outcomes.append(
                    build_spec(spec, provider, force, replace_published=replace_published)
                )
    finally:
        if len(specs) * len(providers) > 1:
            say(summary(outcomes))
    return outcomes


def summary(outcomes: Sequence[BuildOutcome]) -> str:
    built = [f"{o.provider}:{o.image}" for o in outcomes if not o.up_to_date]
    current = [f"{o.provider}:{o.image}" for o in outcomes if o.up_to_date]
    return (
        f"built {len(built)} ({', '.join(built) or 'none'}); "
        f"up to date {len(current)} ({', '.join(current) or 'none'})"
    )
