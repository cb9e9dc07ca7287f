"""build-image: spec -> fingerprint -> (up to date? stop) -> stage -> render ->
validate -> packer build -> manifest -> build record.

One flow for every provider (everbake.bake.skeleton); the provider supplies its
steps (`Provider.bake_steps`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from everbake.bake.skeleton import BuildOutcome, run
from everbake.providers import DEFAULT, Provider, get
from everbake.settings import Settings
from everbake.spec import ImageSpec, load_spec

__all__ = ["BuildOutcome", "build_image", "build_spec"]


def build_image(
    spec_name_or_path: str | Path,
    provider: str | Provider = DEFAULT,
    force: bool = False,
    *,
    images_dir: Path | None = None,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    replace_published: bool = False,
    settings: Settings | None = None,
) -> BuildOutcome:
    """Build one image on one provider; ``replace_published`` only matters for clouds."""
    chosen = get(provider)  # an unknown name lists the choices
    settings = settings or Settings()
    if images_dir is not None:
        settings = dataclasses.replace(settings, images_dir=images_dir)
    if cache_dir is not None:
        settings = dataclasses.replace(settings, local_cache=cache_dir)
    spec = load_spec(spec_name_or_path, settings.images_dir)
    return build_spec(
        spec,
        chosen,
        force,
        settings=settings,
        environ=environ,
        replace_published=replace_published,
    )


def build_spec(
    spec: ImageSpec,
    provider: str | Provider,
    force: bool = False,
    *,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
    replace_published: bool = False,
) -> BuildOutcome:
    """`build_image` for a spec already loaded."""
    steps = get(provider).bake_steps(
        spec,
        settings or Settings(),
        os.environ if environ is None else environ,
        force=force,
        replace_published=replace_published,
    )
    return run(steps, force)
