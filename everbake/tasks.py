"""invoke tasks: thin wrappers that read flags, fall back to config, call the library.

Defaults live in one `ns.configure({...})` below; invoke.yaml or INVOKE_EVERBAKE_*
environment variables override them (e.g. INVOKE_EVERBAKE_IMAGE=scip).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from invoke import Collection, Context, Exit

from everbake import check as checks
from everbake import packer
from everbake import plan as planning
from everbake import render as rendering
from everbake.errors import EverbakeError, SpecError
from everbake.providers import NAMES, get
from everbake.spec import ImageSpec, list_images, load_spec
from everbake.taskutil import split_list, task
from everbake.ui import phase, say

DEFAULTS: dict[str, Any] = {
    "everbake": {
        "image": "optimization",  # the default image of single-image tasks
        "providers": list(NAMES),  # what validate/plan/check cover by default
        "build_dir": "build",
        "dist_dir": "dist",
        "images_dir": "",  # empty: the images/ folder next to the everbake package
    }
}


def _cfg(c: Context) -> Any:
    return c.config.everbake


def _images_dir(c: Context) -> Path | None:
    value = _cfg(c).images_dir
    return Path(value) if value else None


def _providers(c: Context, provider: str | None) -> list[str]:
    names = split_list(provider) or list(_cfg(c).providers)
    for name in names:
        get(name)  # an unknown name lists the choices
    return names


def _specs(c: Context, image: str | None, default_all: bool) -> list[ImageSpec]:
    """Load every image asked for; report the problems of all of them at once."""
    names = split_list(image) or (list_images(_images_dir(c)) if default_all else [_cfg(c).image])
    specs, problems = [], []
    for name in names:
        try:
            specs.append(load_spec(name, _images_dir(c)))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return specs


def _render_layers(
    c: Context, spec: ImageSpec, provider: str, version: tuple[int, int, int] | None
) -> list[rendering.Rendered]:
    """Render every layer of ``spec`` for ``provider`` into the configured build dir."""
    return rendering.render_layers(
        spec, provider, Path(_cfg(c).build_dir), version, dist_root=Path(_cfg(c).dist_dir)
    )


def _warn_unpinned(specs: list[ImageSpec], providers: list[str]) -> None:
    """What build-image would refuse, said as a warning (specs still validate offline)."""
    from everbake.pinagent import unpinned_agent

    for spec in specs:
        for name in providers:
            problem = unpinned_agent(spec, name)
            if problem:
                say(f"warning: {problem}")


HELP_IMAGE = "image name in images/ or path to a .toml (comma-separated for several)"
HELP_PROVIDER = f"one of {', '.join(NAMES)} (comma-separated for several)"


@task(help={"provider": HELP_PROVIDER + "; default: all, failing only on tools"})
def check(c, provider=None):
    """Check tools (packer, mmdebstrap) and per-provider credentials; print fixes."""
    names = _providers(c, provider)
    lines = checks.run_checks(names)
    print(checks.format_lines(lines))
    strict = bool(provider)  # without --provider, missing cloud credentials are information
    failed = [line for line in lines if not line.ok and (strict or line.what == "packer")]
    if failed:
        raise Exit(f"error: {len(failed)} check(s) failed; run the 'fix:' commands above", 1)


@task(help={"image": HELP_IMAGE + "; default: the configured image", "provider": HELP_PROVIDER})
def render(c, image=None, provider=None):
    """Render Packer HCL for an image into build/<provider>/<image>/."""
    version = packer.detect_version_or_none()
    for spec in _specs(c, image, default_all=False):
        for name in _providers(c, provider):
            with phase(f"render {spec.name} for {name}"):
                for done in _render_layers(c, spec, name, version):
                    rendering.check_rendered(done.directory, name)
                    print(done.directory)


@task(help={"image": HELP_IMAGE + "; default: all images", "provider": HELP_PROVIDER})
def validate(c, image=None, provider=None):
    """Render and validate every image x provider (packer fmt -check + packer validate)."""
    version = packer.detect_version()
    failures = []
    specs = _specs(c, image, default_all=True)
    _warn_unpinned(specs, _providers(c, provider))
    for spec in specs:
        for name in _providers(c, provider):
            with phase(f"validate {spec.name} for {name}"):
                try:
                    for done in _render_layers(c, spec, name, version):
                        depth = rendering.validate_rendered(done, version)
                        say(f"    ok {done.directory} ({depth})")
                except EverbakeError as exc:
                    failures.append(f"{spec.name}/{name}: {exc}")
                    say(f"    FAILED {spec.name}/{name}")
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
    specs = _specs(c, image, default_all=True)
    _warn_unpinned(specs, _providers(c, provider))
    rows = planning.plan_rows(specs, _providers(c, provider))
    planning.add_status(rows, specs, offline=offline)
    if format == "json":
        print(planning.format_json(rows))
    else:
        print(planning.format_table(rows, planning.STATUS_COLUMNS))
    sys.stdout.flush()


ns = Collection(check, render, validate, plan)
ns.configure(DEFAULTS)

# Build, run and retire images: their own modules, one collection.
from everbake import tasks_agent, tasks_build, tasks_cloud  # noqa: E402

ns.add_task(tasks_build.build_image)
ns.add_task(tasks_build.run_local)
ns.add_task(tasks_cloud.gc_images)
ns.add_task(tasks_agent.pin_agent)
