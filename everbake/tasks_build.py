"""invoke tasks: build-image and run-local (thin: flags -> one library call)."""

from __future__ import annotations

from pathlib import Path

import invoke

from everbake.taskutil import build_providers_of, settings_of, split_list, task


@task(
    help={
        "provider": "local (default), gcp or yandex; comma-separated for several "
        "(default: the configured provider)",
        "image": "image spec name in images/ or a path to a .toml (default: the configured "
        "image, optimization); comma-separated for several, or 'all' for every spec in images/",
        "force": "rebuild even when an image with this fingerprint exists",
        "replace_published": "with --force, replace a cloud image that a published record names",
    }
)
def build_image(c, provider=None, image=None, force=False, replace_published=False):
    """Bake images from their specs; does nothing for a fingerprint already built."""
    from everbake.bake.many import build_images  # the flows load on use: --list stays fast

    settings = settings_of(c)
    build_images(
        split_list(image) or [settings.image],
        build_providers_of(settings, provider),
        force=force,
        replace_published=replace_published,
        settings=settings,
    )


@task(
    help={
        "image": "spec name (its current build), image name or tarball (default: the "
        "configured image, optimization)",
        "job": "job directory: params.json and a data archive",
        "model": "model directory or archive (default: examples/transport)",
        "app": "an exported app directory (invoke export-app): run the task as Everest would",
    },
)
def run_local(c, job, image=None, model=None, app=None):
    """Run one task of a job inside a scratch copy of a local image, with live status."""
    from everbake.everest.runapp import run_app  # the flows load on use: --list stays fast
    from everbake.runlocal import run_local as run

    model_path = Path(model) if model else None
    settings = settings_of(c)
    if app:
        outcome = run_app(Path(app), Path(job), image=image, model=model_path, settings=settings)
    else:
        outcome = run(image, Path(job), model=model_path, settings=settings)
    if outcome.cancelled:
        raise invoke.Exit("cancelled", 130)
    if outcome.exit_code != 0:
        where = outcome.run_dir
        raise invoke.Exit(f"error: the task failed (exit {outcome.exit_code}); see {where}", 1)
