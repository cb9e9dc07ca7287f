"""invoke tasks: thin wrappers that read flags, fall back to config, call the library.

Defaults live in one `ns.configure(DEFAULTS)` below (everbake.taskutil.DEFAULTS);
invoke.yaml or INVOKE_EVERBAKE_* environment variables override them (e.g.
INVOKE_EVERBAKE_IMAGE=scip), and every task reads them through one Settings
object (everbake.settings).
"""

from __future__ import annotations

import os
import sys

from invoke import Collection, Exit

from everbake import build_plan as planning
from everbake import check as checks
from everbake import packer, packer_dir
from everbake.errors import EverbakeError
from everbake.pinagent import unpinned_agent
from everbake.providers import NAMES, Provider
from everbake.render import Rendered
from everbake.settings import ALL, Settings
from everbake.spec import ImageSpec
from everbake.taskutil import DEFAULTS, providers_of, settings_of, split_list, task
from everbake.ui import phase, say


def _specs(settings: Settings, image: str | None, default_all: bool) -> list[ImageSpec]:
    """Load every image asked for; report the problems of all of them at once."""
    default = ALL if default_all else settings.image
    return settings.load_specs(split_list(image) or [default])


def _render_layers(
    settings: Settings, spec: ImageSpec, provider: Provider, version: tuple[int, int, int] | None
) -> list[Rendered]:
    """Render every layer of ``spec`` for ``provider`` into the configured build dir."""
    return packer_dir.write_layers(
        spec,
        provider,
        settings.build_root(spec),
        version,
        dist_root=settings.dist_root(spec),
        environ=os.environ,
    )


def _warn_unpinned(specs: list[ImageSpec], providers: list[Provider]) -> None:
    """What build-image would refuse, said as a warning (specs still validate offline)."""
    for spec in specs:
        for provider in providers:
            problem = unpinned_agent(spec, provider)
            if problem:
                say(f"warning: {problem}")


HELP_IMAGE = "image name in images/ or path to a .toml (comma-separated for several)"
HELP_PROVIDER = f"one of {', '.join(NAMES)} (comma-separated for several)"


@task(help={"provider": HELP_PROVIDER + "; default: all, failing only on tools"})
def check(c, provider=None):
    """Check tools (packer, mmdebstrap) and per-provider credentials; print fixes."""
    settings = settings_of(c)
    lines = checks.run_checks(providers_of(settings, provider), settings=settings)
    print(checks.format_lines(lines))
    strict = bool(provider)  # without --provider, missing cloud credentials are information
    failed = [line for line in lines if not line.ok and (strict or line.what == "packer")]
    if failed:
        raise Exit(f"error: {len(failed)} check(s) failed; run the 'fix:' commands above", 1)


@task(help={"image": HELP_IMAGE + "; default: the configured image", "provider": HELP_PROVIDER})
def render(c, image=None, provider=None):
    """Render Packer HCL for an image into build/<provider>/<image>/."""
    settings = settings_of(c)
    version = packer.detect_version_or_none()
    chosen = providers_of(settings, provider)
    for spec in _specs(settings, image, default_all=False):
        for each in chosen:
            with phase(f"render {spec.name} for {each.name}"):
                for done in _render_layers(settings, spec, each, version):
                    packer_dir.check_rendered(done.directory, each)
                    print(done.directory)


@task(help={"image": HELP_IMAGE + "; default: all images", "provider": HELP_PROVIDER})
def validate(c, image=None, provider=None):
    """Render and validate every image x provider (packer fmt -check + packer validate)."""
    settings = settings_of(c)
    chosen = providers_of(settings, provider)
    version = packer.detect_version()
    failures = []
    specs = _specs(settings, image, default_all=True)
    _warn_unpinned(specs, chosen)
    for spec in specs:
        for each in chosen:
            with phase(f"validate {spec.name} for {each.name}"):
                try:
                    for done in _render_layers(settings, spec, each, version):
                        depth = packer_dir.validate_rendered(done, version)
                        say(f"    ok {done.directory} ({depth})")
                except EverbakeError as exc:
                    failures.append(f"{spec.name}/{each.name}: {exc}")
                    say(f"    FAILED {spec.name}/{each.name}")
    if failures:
        raise EverbakeError("\n".join(failures))


@task(
    help={
        "image": HELP_IMAGE + "; default: all images",
        "provider": HELP_PROVIDER,
        "format": "table (default) or json",
        "offline": "skip cloud lookups; the exists/action columns then say unknown",
    }
)
def plan(c, image=None, provider=None, format="table", offline=False):
    """Show both layers per image and provider: fingerprint, name, exists?, action."""
    if format not in ("table", "json"):
        raise EverbakeError(f"--format {format}: use 'table' or 'json'")
    settings = settings_of(c)
    chosen = providers_of(settings, provider)
    specs = _specs(settings, image, default_all=True)
    _warn_unpinned(specs, chosen)
    rows = planning.plan_rows(specs, chosen)
    planning.add_status(rows, specs, chosen, offline=offline, settings=settings)
    planning.add_changes(rows, specs, settings)
    if format == "json":
        print(planning.format_json(rows))
    else:
        print(planning.format_table(rows, planning.STATUS_COLUMNS))
        changes = planning.format_changes(rows)
        if changes:
            print(f"\nchanges of the images to build:\n{changes}")
    sys.stdout.flush()


ns = Collection(check, render, validate, plan)
ns.configure(DEFAULTS)

# Build, run and retire images: their own modules, one collection.
from everbake import (  # noqa: E402
    tasks_agent,
    tasks_build,
    tasks_ci,
    tasks_cloud,
    tasks_everest,
    tasks_jobs,
    tasks_replay,
)

ns.add_task(tasks_build.build_image)
ns.add_task(tasks_build.run_local)
ns.add_task(tasks_cloud.gc_images)
ns.add_task(tasks_cloud.clean_builds)
tasks_everest.register(ns)
tasks_jobs.register(ns)
ns.add_task(tasks_ci.ci_pipeline)
ns.add_task(tasks_agent.pin_agent)
ns.add_task(tasks_replay.diff_images)
ns.add_task(tasks_replay.replay)
