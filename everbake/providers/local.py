"""The local provider: Packer's null source drives everbake.localbuild (mmdebstrap +
chroot); images are tarballs in dist/local/, the base layer a cached root filesystem."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from everbake import naming
from everbake.providers.base import BuildSettings, CheckLine, Provider

if TYPE_CHECKING:
    from everbake.bake.skeleton import BakeSteps
    from everbake.fingerprint import Fingerprints
    from everbake.retirement import Policy
    from everbake.settings import Settings
    from everbake.spec import ImageSpec
    from everbake.stores import ImageStore


class Local(Provider):
    name = "local"
    layers = ("image",)  # one Packer run; the localbuild steps cache the base layer
    source_type = "null"
    reuse_action = "reuse (cached)"
    source_template = "local/source.pkr.hcl.j2"
    build_template = "local/build.pkr.hcl.j2"

    def layer_dir(self, out_root: Path, spec: ImageSpec, layer: str) -> Path:
        return out_root / self.name / spec.name  # one directory: no layer below it

    def manifest_path(self, dist_root: Path, spec: ImageSpec, layer: str) -> Path:
        return dist_root / "builds" / self.name / f"{spec.name}.manifest.json"

    def render_paths(self, spec: ImageSpec, layer: str, directory: Path) -> dict[str, Any]:
        from everbake.localbuild.step_plan import PLAN_FILE

        return {"plan_file": (directory / PLAN_FILE).resolve()}

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Path],
        settings: BuildSettings,
        environ: Mapping[str, str],
    ) -> dict[str, Any]:
        return {
            **self.common_vars(spec, fps, "image"),
            "base_fingerprint": fps.base,
            "python": sys.executable,
            "repo_root": str(spec.repo_root),
            "plan_file": str(paths["plan_file"]),
            "manifest_path": str(paths["manifest"]),
        }

    def check(self, specs: Sequence[ImageSpec], environ: Mapping[str, str]) -> list[CheckLine]:
        lines = []
        for tool, fix in (
            ("mmdebstrap", "apt-get install -y mmdebstrap"),
            ("zstd", "apt-get install -y zstd"),
        ):
            found = shutil.which(tool)
            lines.append(CheckLine(f"local: {tool}", bool(found), found or "not found", fix))
        return lines

    def retirement(self) -> Policy:
        from everbake.retirement import Policy

        return Policy(deprecate_first=False)  # a tarball has no deprecation

    def gc_target(
        self, spec: ImageSpec, layer: str, settings: Settings, environ: Mapping[str, str]
    ) -> tuple[ImageStore, str, Mapping[str, str] | set[str] | None]:
        from everbake.localbuild.step_plan import cache_dir_in, images_dir_in
        from everbake.stores.local import LocalBaseCaches, LocalImageStore

        dist = settings.dist_root(spec)
        if layer == "base":
            # Base caches are shared by specs with the same base: one family of all of them.
            store = LocalBaseCaches(cache_dir_in(dist))
            return store, "base caches", bases_in_use(settings)
        return LocalImageStore(images_dir_in(dist)), naming.family(spec, layer), None

    def bake_steps(
        self,
        spec: ImageSpec,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        force: bool,
        replace_published: bool,
    ) -> BakeSteps:
        from everbake.bake.local_steps import LocalSteps

        return LocalSteps(self, spec, settings, environ, force)

    def layer_status(
        self,
        spec: ImageSpec,
        layers: Mapping[str, Mapping[str, Any]],
        settings: Settings,
        environ: Mapping[str, str],
        stores: dict[tuple[str, str], Any],
        offline: bool,
    ) -> dict[str, bool | str]:
        """From the build record and the base cache: nothing to look up remotely."""
        from everbake.localbuild.step_plan import base_cache_name, cache_dir_in
        from everbake.records import local_up_to_date, read_record, record_path

        dist = settings.dist_root(spec)
        image = layers["image"]
        record = read_record(record_path(dist, self.name, image["image_name"]))
        cache = cache_dir_in(dist) / base_cache_name(layers["base"]["fingerprint"])
        return {
            "base": cache.is_file(),
            "image": local_up_to_date(record, image["fingerprint"]) is not None,
        }


def bases_in_use(settings: Settings) -> dict[str, str]:
    """Base cache name -> why it is kept: the current base of each spec in images/."""
    from everbake.fingerprint import fingerprints
    from everbake.localbuild.step_plan import base_cache_name
    from everbake.spec import list_images, load_spec

    kept: dict[str, str] = {}
    for name in list_images(settings.images_dir):
        spec = load_spec(name, settings.images_dir)
        cache = base_cache_name(fingerprints(spec).base).removesuffix(".tar.zst")
        kept[cache] = f"{kept[cache]}, {name}" if cache in kept else f"the current base of {name}"
    return kept
