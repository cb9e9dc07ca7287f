"""Where everbake reads and writes, and what it builds by default: one object the
task layer makes from invoke's configuration (ns.configure, invoke.yaml,
INVOKE_EVERBAKE_*) and hands to every library call.

A directory left unset (None) is the one next to the spec's repository
(<repo>/build, <repo>/dist, <repo>/runs), as for a library caller that passes
no settings; relative directories from the configuration are taken from the
current directory, as invoke users expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake.errors import SpecError
from everbake.localbuild.step_plan import cache_dir_in
from everbake.spec import REPO_ROOT, ImageSpec, list_images, load_spec, repo_root_of

DEFAULT_IMAGE = "optimization"
ALL = "all"  # --image all: every spec in the images dir
# Where the local provider's base layer caches live when the settings name none.
LOCAL_CACHE_ENV = "EVERBAKE_LOCAL_CACHE"


@dataclass(frozen=True)
class Settings:
    images_dir: Path | None = None  # None: images/ next to the everbake package
    build_dir: Path | None = None
    dist_dir: Path | None = None
    runs_dir: Path | None = None
    image: str = DEFAULT_IMAGE  # the default image of single-image tasks
    # The default provider of build-image; "" leaves it to the registry's default
    # (the task layer fills it in: everbake.taskutil.DEFAULTS).
    provider: str = ""
    providers: tuple[str, ...] = ()  # what validate/plan/check cover by default (): all
    # The local provider's base layer caches (None: $EVERBAKE_LOCAL_CACHE or <dist>/cache/local).
    local_cache: Path | None = None
    # Opt-in: downloaded apt archives and pip wheels kept here between local bakes
    # (config everbake.package_cache, INVOKE_EVERBAKE_PACKAGE_CACHE). Outside every
    # image; it saves downloads and never changes what is baked (apt checks each
    # .deb against the index; pip keeps the exact pinned files).
    package_cache: Path | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """From invoke's ``c.config.everbake``: empty strings mean "the default"."""

        def path(key: str) -> Path | None:
            value = config.get(key) or ""
            return Path(value).absolute() if value else None

        return cls(
            images_dir=path("images_dir"),
            build_dir=path("build_dir"),
            dist_dir=path("dist_dir"),
            runs_dir=path("runs_dir"),
            image=str(config.get("image") or DEFAULT_IMAGE),
            provider=str(config.get("provider") or ""),
            providers=tuple(config.get("providers") or ()),
            package_cache=path("package_cache"),
        )

    @property
    def repo_root(self) -> Path:
        """The repository of the images dir (scripts, templates, runtime)."""
        return repo_root_of(self.images_dir) if self.images_dir else REPO_ROOT

    def build_root(self, spec: ImageSpec) -> Path:
        return self.build_dir or spec.repo_root / "build"

    def dist_root(self, spec: ImageSpec) -> Path:
        return self.dist_dir or spec.repo_root / "dist"

    def dist_root_of_repo(self) -> Path:
        return self.dist_dir or self.repo_root / "dist"

    def runs_root(self) -> Path:
        return self.runs_dir or self.repo_root / "runs"

    def local_cache_dir(self, spec: ImageSpec, environ: Mapping[str, str]) -> Path:
        """The local base layer caches: the settings', else $EVERBAKE_LOCAL_CACHE of
        ``environ``, else <dist>/cache/local."""
        if self.local_cache is not None:
            return self.local_cache
        override = environ.get(LOCAL_CACHE_ENV)
        return Path(override).resolve() if override else cache_dir_in(self.dist_root(spec))

    # -- specs -----------------------------------------------------------

    def load_spec(self, name_or_path: str | Path) -> ImageSpec:
        return load_spec(name_or_path, self.images_dir)

    def load_specs(self, names: Sequence[str]) -> list[ImageSpec]:
        """The specs ``names`` names (ALL: every spec of the images dir), loaded before
        anything is done with them, with the problems of all of them at once."""
        wanted = list_images(self.images_dir) if ALL in names else list(names)
        specs, problems = [], []
        for name in wanted:
            try:
                specs.append(self.load_spec(name))
            except SpecError as exc:
                problems.extend(exc.problems)
        if problems:
            raise SpecError(problems)
        return specs
