"""build-image: spec -> fingerprint -> (up to date? stop) -> stage -> render ->
validate -> packer build -> manifest -> build record.

One flow for every provider (everbake.bake.skeleton); it holds the provider and
picks the steps by its kind: a cloud's (everbake.bake.cloud_steps) or the local
chroot's (everbake.bake.local_steps). The provider only answers questions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from everbake.bake.cloud_steps import CloudSteps
from everbake.bake.local_steps import LocalSteps
from everbake.bake.skeleton import BakeSteps, BuildOutcome, run
from everbake.providers import DEFAULT, CloudProvider, Provider, get
from everbake.settings import Settings
from everbake.spec import ImageSpec, load_spec

__all__ = ["BuildOutcome", "build_image", "build_spec", "steps_for"]


def build_image(
    spec_name_or_path: str | Path,
    provider: Provider | None = None,
    force: bool = False,
    *,
    images_dir: Path | None = None,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    replace_published: bool = False,
    settings: Settings | None = None,
) -> BuildOutcome:
    """Build one image on one provider (default: the registry's, local);
    ``replace_published`` only matters for clouds."""
    settings = settings or Settings()
    if images_dir is not None:
        settings = dataclasses.replace(settings, images_dir=images_dir)
    if cache_dir is not None:
        settings = dataclasses.replace(settings, local_cache=cache_dir)
    spec = load_spec(spec_name_or_path, settings.images_dir)
    return build_spec(
        spec,
        provider or get(DEFAULT),
        force,
        settings=settings,
        environ=environ,
        replace_published=replace_published,
    )


def build_spec(
    spec: ImageSpec,
    provider: Provider,
    force: bool = False,
    *,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
    replace_published: bool = False,
) -> BuildOutcome:
    """`build_image` for a spec already loaded."""
    steps = steps_for(
        spec,
        provider,
        settings or Settings(),
        os.environ if environ is None else environ,
        force=force,
        replace_published=replace_published,
    )
    return run(steps, force)


def steps_for(
    spec: ImageSpec,
    provider: Provider,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    force: bool,
    replace_published: bool,
) -> BakeSteps:
    """The steps that bake ``spec`` on ``provider``: a cloud's, or the local chroot's."""
    if isinstance(provider, CloudProvider):
        return CloudSteps(provider, spec, settings, environ, force, replace_published)
    return LocalSteps(provider, spec, settings, environ, force)
