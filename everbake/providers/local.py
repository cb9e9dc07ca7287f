"""The local provider: Packer's null source drives everbake.localbuild (mmdebstrap +
chroot); images are tarballs in dist/local/, the base layer a cached root filesystem."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from everbake import naming
from everbake.check_line import CheckLine
from everbake.localbuild.step_plan import PLAN_FILE, base_cache_name, image_tarball, images_dir_in
from everbake.providers.base import BuildSettings, GcTarget, Provider
from everbake.records import local_up_to_date, read_record, record_path
from everbake.stores.local import LocalBaseCaches, LocalImageStore

if TYPE_CHECKING:
    from everbake.fingerprint import Fingerprints
    from everbake.settings import Settings
    from everbake.spec import ImageSpec


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

    def gc_target(
        self, spec: ImageSpec, layer: str, settings: Settings, environ: Mapping[str, str]
    ) -> GcTarget:
        if layer == "base":
            # Base caches are shared by specs with the same base: one family of all of them.
            caches = LocalBaseCaches(settings.local_cache_dir(spec, environ))
            return GcTarget(caches, "base caches", shared_bases=True)
        images = LocalImageStore(images_dir_in(settings.dist_root(spec)))
        return GcTarget(images, naming.family(spec, layer))

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
        dist = settings.dist_root(spec)
        image = layers["image"]
        record = read_record(record_path(dist, self.name, image["image_name"]))
        tarball = image_tarball(dist, image["image_name"], spec.build.local.compression)
        cache = settings.local_cache_dir(spec, environ) / base_cache_name(
            layers["base"]["fingerprint"]
        )
        return {
            "base": cache.is_file(),
            "image": local_up_to_date(record, image["fingerprint"], tarball) is not None,
        }
