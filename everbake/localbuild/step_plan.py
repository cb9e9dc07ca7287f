"""The local plan: everything the three build steps need, as one JSON file.

Written by the build flow next to the rendered HCL (build/local/<image>/local-plan.json)
and read by `python -m everbake.localbuild base|image|export`. It holds paths,
script lists and their EB_* environments, never a secret's value: embed-mode
secrets are named here and their values reach the image step only through its
environment (EB_SECRET_<NAME>).

Base layer cache: <cache_dir>/base-<base fingerprint>.tar.zst.
The cache dir defaults to <dist>/cache/local (everbake.settings: the settings or
EVERBAKE_LOCAL_CACHE override it), so `rm -rf dist` forgets every local build at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from everbake.errors import BuildError
from everbake.files import write_atomic
from everbake.localbuild import export

PLAN_VERSION = 1
PLAN_FILE = "local-plan.json"
STAGING_IN_IMAGE = "/var/tmp/everbake-staging"
LAYERS = ("base", "image")


def cache_dir_in(dist: Path) -> Path:
    """The default cache dir, <dist>/cache/local (this provider's folder names)."""
    return dist / "cache" / "local"


def images_dir_in(dist: Path) -> Path:
    """Where local images (tarballs) live: <dist>/local."""
    return dist / "local"


def base_cache_name(base_fingerprint: str) -> str:
    """Keyed by the base fingerprint alone: specs whose base layers match share it."""
    return f"base-{base_fingerprint}.tar.zst"


def image_tarball(dist: Path, image: str, compression: str = "zstd") -> Path:
    """dist/local/<image>.tar.zst, .tar.gz or .tar (build.local.compression)."""
    return images_dir_in(dist) / f"{image}{export.suffix(compression)}"


@dataclass(frozen=True)
class Layer:
    scripts: list[str]  # file names, staged under <staging>/scripts/
    env: dict[str, str]  # EB_* variables for every script of the layer


@dataclass(frozen=True)
class Plan:
    image: str
    base_name: str
    fingerprints: dict[str, str]  # {"base": ..., "image": ...}
    suite: str
    mirror: str
    work_dir: str  # holds rootfs/ while building; removed by export
    base_cache: str  # <cache>/base-<base fingerprint>.tar.zst
    staging_host: str  # staged files prepared on the host
    staging: str  # where they appear inside the image (EB_STAGING)
    staged: list[str]  # relative paths under staging_host
    layers: dict[str, Layer]
    embed_secrets: list[str] = field(default_factory=list)  # names only
    output: str = ""  # its suffix says how it is compressed (export.FORMATS)
    compression_level: int = 3
    log: str = ""
    # Installed by mmdebstrap itself, in its one apt run (the base scripts then find them).
    include: list[str] = field(default_factory=list)
    # Downloaded .debs (apt/) and pip's cache (pip/) kept between bakes; "" for none.
    package_cache: str = ""
    version: int = PLAN_VERSION

    @property
    def apt_cache(self) -> Path | None:
        return Path(self.package_cache) / "apt" if self.package_cache else None

    @property
    def pip_cache(self) -> Path | None:
        return Path(self.package_cache) / "pip" if self.package_cache else None

    @property
    def rootfs(self) -> Path:
        return Path(self.work_dir) / "rootfs"

    @property
    def staging_in_root(self) -> Path:
        return self.rootfs / self.staging.lstrip("/")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        write_atomic(path, self.to_json())


def make_plan(
    *,
    image: str,
    base_name: str,
    fingerprints: Mapping[str, str],
    suite: str,
    mirror: str,
    build_dir: Path,
    cache_dir: Path,
    output: Path,
    staging_host: Path,
    scripts: Mapping[str, Sequence[Path]],
    env: Mapping[str, Mapping[str, str]],
    embed_secrets: Sequence[str] = (),
    compression_level: int = 3,
    include: Sequence[str] = (),
    package_cache: Path | None = None,
) -> Plan:
    """A plan from plain values (the build flow extracts them from the spec)."""
    missing = [layer for layer in LAYERS if not scripts.get(layer)]
    if missing:
        raise BuildError(f"no provisioning scripts for layer(s) {', '.join(missing)}")
    layers = {
        layer: Layer(
            scripts=[Path(p).name for p in scripts[layer]],
            env={**env.get(layer, {}), "EB_STAGING": STAGING_IN_IMAGE},
        )
        for layer in LAYERS
    }
    for layer in layers.values():
        leaked = [k for k in layer.env if k.startswith("EB_SECRET_")]
        if leaked:
            raise BuildError(f"secret values must not go into the plan ({', '.join(leaked)})")
    staged = sorted(
        str(p.relative_to(staging_host)) for p in staging_host.rglob("*") if p.is_file()
    )
    return Plan(
        image=image,
        base_name=base_name,
        fingerprints=dict(fingerprints),
        suite=suite,
        mirror=mirror,
        work_dir=str((build_dir / "work").resolve()),
        base_cache=str((cache_dir / base_cache_name(fingerprints["base"])).resolve()),
        staging_host=str(staging_host.resolve()),
        staging=STAGING_IN_IMAGE,
        staged=staged,
        layers=layers,
        embed_secrets=list(embed_secrets),
        output=str(output.resolve()),
        compression_level=compression_level,
        log=str((build_dir / "build.log").resolve()),
        include=list(include),
        package_cache=str(package_cache.resolve()) if package_cache else "",
    )


def load_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"local plan {path} does not exist; run `invoke build-image`") from None
    except json.JSONDecodeError as exc:
        raise BuildError(f"local plan {path} is not valid JSON ({exc}); rebuild it") from None
    if data.get("version") != PLAN_VERSION:
        raise BuildError(
            f"local plan {path} has version {data.get('version')}, expected {PLAN_VERSION}"
        )
    data["layers"] = {name: Layer(**layer) for name, layer in data["layers"].items()}
    try:
        return Plan(**data)
    except TypeError as exc:
        raise BuildError(
            f"local plan {path} does not match this everbake ({exc}); rebuild it"
        ) from None
