"""The image spec's schema: frozen dataclasses and the tables of accepted values.

A field's annotation is the TOML type it accepts and a field without a default
is required (loader.py reads the TOML, convert.py builds these classes from it
by their annotations, rules.py checks what the types cannot say).
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
IMAGES_DIR = REPO_ROOT / "images"

# GCE and Yandex image names and families share this rule.
CLOUD_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# Longest suffix a family gets in an image name: "-base-" + 12 hex digits.
NAME_SUFFIX_LEN = len("-base-") + 12
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SPEC_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")
SECRET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.!+_-]+$")
PY_VERSION_RE = re.compile(r"^3\.\d{1,2}$")
INSTALL_METHODS = ("pip", "apt", "script")
SECRET_MODES = ("embed", "env", "metadata")
# build.local.compression -> its levels (lowest, highest, default); "none" has none.
COMPRESSION_LEVELS: dict[str, tuple[int, int, int] | None] = {
    "zstd": (1, 19, 3),  # 3 is zstd's own default; 20-22 would need --ultra
    "gzip": (1, 9, 6),  # 6 is gzip's own default
    "none": None,
}
COMPRESSIONS = tuple(COMPRESSION_LEVELS)
# Keys that would carry a secret's value: never accepted in a spec.
VALUE_KEYS = ("value", "token", "password", "secret", "content", "data")


@dataclass(frozen=True)
class Solver:
    name: str
    install: str
    version: str
    package: str = ""
    script: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class Python:
    version: str
    venv: str
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class System:
    timezone: str
    user: str
    apt_packages: tuple[str, ...] = ()
    # "host", "none", or a list of PEM files relative to the repository.
    ca_certificates: str | tuple[str, ...] = "none"
    keep_ca_certificates: bool = False


@dataclass(frozen=True)
class Agent:
    source: str
    ref: str
    config_template: str
    install_dir: str
    token_secret: str
    sha256: str = ""
    required: bool = False
    # The agent's interpreter: "" is the base's python3, else a path the base provides.
    python: str = ""
    # What the agent supports when its archive declares nothing (the seed talk: 3.6-3.9).
    python_requires: str = ">=3.6,<3.10"


@dataclass(frozen=True)
class Runtime:
    source: str


@dataclass(frozen=True)
class Secret:
    mode: str
    env: str = ""
    metadata_key: str = ""
    path: str = ""


@dataclass(frozen=True)
class LocalBase:
    suite: str
    mirror: str


@dataclass(frozen=True)
class GcpBase:
    image_family: str = ""
    image_project: str = ""
    image: str = ""  # a pinned image name wins over the family


@dataclass(frozen=True)
class YandexBase:
    image_family: str = ""
    image_folder_id: str = ""
    image_id: str = ""  # a pinned image id wins over the family


@dataclass(frozen=True)
class Base:
    local: LocalBase
    gcp: GcpBase
    yandex: YandexBase


@dataclass(frozen=True)
class LocalBuild:
    compression: str = "zstd"
    compression_level: int = 0  # 0: the method's default (COMPRESSION_LEVELS)

    @property
    def level(self) -> int:
        """The level the image tarball is written with (0 for "none")."""
        levels = COMPRESSION_LEVELS.get(self.compression)
        return (self.compression_level or levels[2]) if levels else 0


@dataclass(frozen=True)
class GcpBuild:
    zones: tuple[str, ...]
    machine_type: str
    project: str = ""
    preemptible: bool = True
    disk_size_gb: int = 20
    network: str = ""  # empty: not sent (googlecompute's own default is "default")
    subnetwork: str = ""
    # region -> subnetwork: googlecompute expands a subnetwork name with the zone's
    # region, so zones in several regions need one each (or none at all).
    subnetworks: Mapping[str, str] = field(default_factory=lambda: types.MappingProxyType({}))
    use_os_login: bool = False
    service_account: str = ""  # empty: the build VM gets no service account at all
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class YandexBuild:
    zones: tuple[str, ...]
    platform_id: str
    folder_id: str = ""
    cores: int = 2
    memory_gb: int = 4
    core_fraction: int = 100
    preemptible: bool = True
    disk_size_gb: int = 20
    subnet_id: str = ""
    # zone -> subnet id: a Yandex subnet belongs to one zone, and without one the
    # builder makes a network and a subnet for every build (VPC rights and quota).
    subnets: Mapping[str, str] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class Build:
    local: LocalBuild
    gcp: GcpBuild
    yandex: YandexBuild


@dataclass(frozen=True)
class GcpResource:
    zone: str
    machine_type: str
    project: str = ""
    network: str = ""
    service_account: str = ""  # the VMs' account by its email, never a key
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class YandexResource:
    zone: str
    platform_id: str
    cores: int = 2
    memory_gb: int = 4
    folder_id: str = ""
    subnet_id: str = ""
    service_account_id: str = ""  # the VMs' account by its id, never a key


@dataclass(frozen=True)
class Resource:
    gcp: GcpResource
    yandex: YandexResource
    preemptible: bool = True
    max_instances: int = 1
    idle_timeout_minutes: int = 10
    task_slots: int = 1
    disk_size_gb: int = 20
    # task_slots above the machine's cores only when the spec says so.
    oversubscribe: bool = False
    # Hourly prices of one VM, for sweeps' cost estimates (0: not given; no
    # built-in price list, prices change). everbake/everest/pricing.py.
    price_per_hour: float = 0.0
    preemptible_price_per_hour: float = 0.0
    currency: str = ""


@dataclass(frozen=True)
class ImageSpec:
    name: str
    family: str
    python: Python
    system: System
    agent: Agent
    runtime: Runtime
    base: Base
    build: Build
    resource: Resource
    description: str = ""
    solvers: tuple[Solver, ...] = ()
    secrets: Mapping[str, Secret] = field(default_factory=lambda: types.MappingProxyType({}))
    # Where the spec came from; not part of the TOML schema.
    source_path: Path = field(default=Path(), compare=False)
    repo_root: Path = field(default=REPO_ROOT, compare=False)

    def to_canonical(self) -> dict[str, Any]:
        """The spec as plain, sorted data (no paths of this machine)."""
        data = _plain(self)
        data.pop("source_path")
        data.pop("repo_root")
        return data

    def repo_path(self, relative: str) -> Path:
        return self.repo_root / relative


# ImageSpec fields that say where the spec came from: not TOML keys.
SCHEMA_ONLY = {"source_path", "repo_root"}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(value[k]) for k in sorted(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
