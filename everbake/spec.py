"""Image specs: images/<name>.toml (over images/defaults.toml) -> frozen ImageSpec.

The dataclasses below are the schema: a field's annotation is the TOML type it
accepts and a field without a default is required. Loading collects every
problem of a file and raises one SpecError with one line per problem, naming the
file, the line when known, the key, what is wrong and how to fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from everbake.errors import SpecError

REPO_ROOT = Path(__file__).resolve().parent.parent
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
COMPRESSIONS = ("zstd", "gzip", "none")
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


@dataclass(frozen=True)
class GcpBuild:
    zones: tuple[str, ...]
    machine_type: str
    project: str = ""
    preemptible: bool = True
    disk_size_gb: int = 20
    network: str = "default"
    subnetwork: str = ""


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


@dataclass(frozen=True)
class YandexResource:
    zone: str
    platform_id: str
    cores: int = 2
    memory_gb: int = 4
    folder_id: str = ""
    subnet_id: str = ""


@dataclass(frozen=True)
class Resource:
    gcp: GcpResource
    yandex: YandexResource
    preemptible: bool = True
    max_instances: int = 1
    idle_timeout_minutes: int = 10
    task_slots: int = 1
    disk_size_gb: int = 20


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


_SCHEMA_ONLY = {"source_path", "repo_root"}


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


# ---------------------------------------------------------------- loading


def resolve_path(name_or_path: str | Path, images_dir: Path | None = None) -> Path:
    """A spec name ('optimization') or a path to a .toml file -> the file's path."""
    images_dir = images_dir or IMAGES_DIR
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise SpecError(
                [
                    f"{text}: no such image spec file; give a name in {images_dir} or a path "
                    "to a .toml file"
                ]
            )
        return path
    path = images_dir / f"{text}.toml"
    if not path.is_file():
        names = list_images(images_dir)
        near = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise SpecError(
            [
                f"--image {text}: no image spec named '{text}' in {images_dir}; {hint}choose "
                f"one of: {', '.join(names) or '(none)'}"
            ]
        )
    return path


def list_images(images_dir: Path | None = None) -> list[str]:
    images_dir = images_dir or IMAGES_DIR
    return sorted(p.stem for p in images_dir.glob("*.toml") if p.stem != "defaults")


def load_spec(name_or_path: str | Path, images_dir: Path | None = None) -> ImageSpec:
    """Load, merge over defaults.toml, validate; raise SpecError listing every problem."""
    path = resolve_path(name_or_path, images_dir)
    # defaults.toml next to the spec, else the one in the images folder.
    defaults_path = path.parent / "defaults.toml"
    if not defaults_path.is_file():
        defaults_path = (images_dir or IMAGES_DIR) / "defaults.toml"
    repo_root = repo_root_of(images_dir)
    files = [_SourceFile.read(path)]
    if defaults_path.is_file() and defaults_path.resolve() != path.resolve():
        files.append(_SourceFile.read(defaults_path))
    problems = [p for f in files for p in f.problems]
    if problems:
        raise SpecError(problems)
    merged: dict[str, Any] = {}
    for source in reversed(files):  # defaults first, the image file wins
        merged = _merge(merged, source.data)
    checker = _Checker(files, repo_root)
    spec = checker.build(merged, path)
    if checker.problems:
        raise SpecError(checker.problems)
    return spec


def repo_root_of(images_dir: Path | None) -> Path:
    """The repository of an images folder is its parent, when it has templates/."""
    if images_dir is not None and (images_dir.resolve().parent / "templates").is_dir():
        return images_dir.resolve().parent
    return REPO_ROOT


def _merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class _SourceFile:
    path: Path
    data: dict[str, Any]
    lines: dict[str, int]
    problems: list[str]

    @classmethod
    def read(cls, path: Path) -> _SourceFile:
        shown = display_path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return cls(
                path,
                {},
                {},
                [f"{shown}: cannot read the file ({exc}); fix its permissions or encoding (UTF-8)"],
            )
        if not text.strip():
            return cls(
                path,
                {},
                {},
                [
                    f"{shown}: the file is empty; an image spec needs at least name, family "
                    "and [[solvers]] (see images/optimization.toml)"
                ],
            )
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            where = f":{match.group(1)}" if match else ""
            return cls(path, {}, {}, [f"{shown}{where}: not valid TOML ({exc}); fix the syntax"])
        return cls(path, data, _line_index(text), [])


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY_RE = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=')


def _line_index(text: str) -> dict[str, int]:
    """Key path ('solvers[1].install', 'build.gcp') -> line number, best effort."""
    index: dict[str, int] = {}
    table = ""
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            name = header.group(2).replace('"', "").replace(" ", "")
            if header.group(1) == "[[":
                counts[name] = counts.get(name, -1) + 1
                table = f"{name}[{counts[name]}]"
            else:
                table = name
            index.setdefault(table, number)
            continue
        key = _KEY_RE.match(line)
        if key:
            name = key.group(1).replace('"', "").replace(" ", "")
            index.setdefault(f"{table}.{name}" if table else name, number)
    return index


class _Checker:
    """Builds the dataclasses from merged data, collecting problems as it goes."""

    def __init__(self, files: list[_SourceFile], repo_root: Path):
        self.files = files
        self.repo_root = repo_root
        self.problems: list[str] = []
        # Keys whose value was unusable and replaced by a placeholder so that every
        # other check still runs: problems about them or their tables are not repeated.
        self.placeholders: set[str] = set()

    def where(self, key: str) -> str:
        """'file:line' of the key, looking in the image file first, then defaults."""
        probe = key
        while probe:
            for source in self.files:
                if probe in source.lines:
                    return f"{display_path(source.path)}:{source.lines[probe]}"
            probe = probe.rpartition(".")[0] if "." in probe else ""
        return display_path(self.files[0].path)

    def problem(self, key: str, message: str) -> None:
        if any(_related(key, bad) for bad in self.placeholders):
            return
        self.problems.append(f"{self.where(key)}: {key}: {message}")

    def placeholder(self, hint: Any, f: dataclasses.Field[Any] | None, key: str) -> Any:
        """A stand-in for an unusable value, so the rest of the file is still checked."""
        self.placeholders.add(key)
        if f is not None and f.default is not dataclasses.MISSING:
            return f.default
        if f is not None and f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.table(hint, {}, key)
        origin = typing.get_origin(hint)
        if origin is tuple:
            return ()
        if origin is Mapping:
            return types.MappingProxyType({})
        if origin in (types.UnionType, typing.Union):
            return self.placeholder(typing.get_args(hint)[0], None, key)
        return {str: "", bool: False, int: 0}[hint]

    # -- generic, annotation-driven conversion

    def build(self, data: dict[str, Any], path: Path) -> ImageSpec:
        spec = self.table(ImageSpec, data, "")
        spec = dataclasses.replace(spec, source_path=path, repo_root=self.repo_root)
        self.check(spec)
        return spec

    def table(self, cls: type, data: dict[str, Any], key: str) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _SCHEMA_ONLY}
        for name in data:
            if name not in fields:
                self.unknown_key(_join(key, name), name, list(fields))
        values: dict[str, Any] = {}
        for name, f in fields.items():
            sub = _join(key, name)
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    if dataclasses.is_dataclass(hints[name]):
                        values[name] = self.table(hints[name], {}, sub)
                        continue
                    self.problem(sub, f"required key is missing; add '{name} = ...'")
                    values[name] = self.placeholder(hints[name], f, sub)
                continue
            value = self.convert(hints[name], data[name], sub)
            values[name] = self.placeholder(hints[name], f, sub) if value is _BAD else value
        return cls(**values)

    def unknown_key(self, key: str, name: str, valid: list[str]) -> None:
        if key.startswith("secrets.") and name in VALUE_KEYS:
            self.problem(
                key,
                "secret values never go in an image spec; set the value in the build's "
                "environment (see README 'Secrets') and keep only mode/env/metadata_key/path here",
            )
            return
        near = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        fix = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(sorted(valid))}"
        self.problem(key, f"unknown key; {fix}")

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                self.problem(key, f"expected a table, got {_kind(value)}; write it as [{key}]")
                return _BAD
            return self.table(hint, value, key)
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if hint is str:
            if isinstance(value, str):
                return value
            return self.wrong(key, value, "a string", f'{key.rpartition(".")[2]} = "..."')
        if hint is bool:
            if isinstance(value, bool):
                return value
            return self.wrong(key, value, "true or false", f"{key.rpartition('.')[2]} = true")
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return self.wrong(key, value, "an integer", f"{key.rpartition('.')[2]} = 20")
        if origin is tuple:
            if not isinstance(value, list):
                return self.wrong(key, value, "a list", f"{key.rpartition('.')[2]} = [...]")
            # Unusable items are reported and left out; the others are still checked.
            items = [self.convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
            for i, item in enumerate(items):
                if item is _BAD:
                    self.placeholders.add(f"{key}[{i}]")
            return tuple(item for item in items if item is not _BAD)
        if origin in (types.UnionType, typing.Union):  # str | tuple[str, ...]
            if isinstance(value, list):
                return self.convert(args[1], value, key)
            return self.convert(args[0], value, key)
        if origin is Mapping:
            if not isinstance(value, dict):
                return self.wrong(key, value, "a table of named entries", f"[{key}.<name>]")
            out = {}
            for name in sorted(value):
                item = self.convert(args[1], value[name], f"{key}.{name}")
                if item is _BAD:
                    self.placeholders.add(f"{key}.{name}")
                else:
                    out[name] = item
            return types.MappingProxyType(out)
        raise TypeError(f"unsupported schema type {hint!r}")  # a bug in this module

    def wrong(self, key: str, value: Any, expected: str, example: str) -> Any:
        # Never echo what was written under [secrets]: it may be a secret's value.
        shown = "" if key.startswith("secrets") else f" {value!r:.40}"
        self.problem(key, f"expected {expected}, got {_kind(value)}{shown}; write e.g. {example}")
        return _BAD

    # -- rules across fields and against the file system

    def check(self, spec: ImageSpec) -> None:
        if not SPEC_NAME_RE.match(spec.name):
            self.problem(
                "name",
                f"'{spec.name}' is not a valid name; use lowercase letters, digits, '-' or "
                "'_', starting with a letter (max 41)",
            )
        self.check_family(spec.family)
        for label, text in (("description", spec.description),):
            if len(text) > 256:
                self.problem(label, "longer than 256 characters (the clouds' limit); shorten it")
        self.check_solvers(spec)
        self.check_python(spec.python)
        self.check_system(spec.system)
        self.check_secrets(spec)
        self.check_agent(spec)
        self.check_build(spec)
        runtime = spec.runtime.source
        if self.inside_repo("runtime.source", runtime) and not (
            (self.repo_root / runtime / "pyproject.toml").is_file()
        ):
            self.problem(
                "runtime.source",
                f"'{spec.runtime.source}' has no pyproject.toml under {self.repo_root}; point "
                "it at the everest-runtime distribution (default 'runtime')",
            )

    def check_family(self, family: str) -> None:
        limit = 63 - NAME_SUFFIX_LEN
        if not CLOUD_NAME_RE.match(family) or len(family) > limit:
            self.problem(
                "family",
                f"'{family}' is not a valid image family for GCE/Yandex; use lowercase "
                "letters, digits and '-', starting with a letter, not ending with '-', at "
                f"most {limit} characters (image names add '-base-<12 hex>')",
            )

    def check_solvers(self, spec: ImageSpec) -> None:
        seen: set[str] = set()
        for i, solver in enumerate(spec.solvers):
            key = f"solvers[{i}]"
            if solver.name in seen:
                self.problem(f"{key}.name", f"solver '{solver.name}' is listed twice; keep one")
            seen.add(solver.name)
            if not SECRET_NAME_RE.match(solver.name):
                self.problem(
                    f"{key}.name",
                    f"'{solver.name}' is not a valid solver name; use lowercase letters, "
                    "digits and '_'",
                )
            if solver.install not in INSTALL_METHODS:
                near = difflib.get_close_matches(solver.install, INSTALL_METHODS, n=1)
                hint = f"did you mean '{near[0]}'? " if near else ""
                self.problem(
                    f"{key}.install",
                    f"unknown install method '{solver.install}'; {hint}use one of: "
                    f"{', '.join(INSTALL_METHODS)}",
                )
                continue
            if not solver.version.strip():
                self.problem(f"{key}.version", "empty version; pin the exact version to install")
            if solver.install in ("pip", "apt"):
                if not solver.package:
                    self.problem(key, f'install = "{solver.install}" needs package = "<name>"')
                for extra in ("script", "sha256"):
                    if getattr(solver, extra):
                        self.problem(
                            f"{key}.{extra}", 'only used with install = "script"; remove it'
                        )
                continue
            if solver.package:
                self.problem(f"{key}.package", 'not used with install = "script"; remove it')
            if not solver.script:
                self.problem(
                    key, 'install = "script" needs script = "provisioning/solvers/<name>.sh"'
                )
                continue
            if not SHA256_RE.match(solver.sha256):
                self.problem(
                    f"{key}.sha256",
                    "needs the script's sha256 (64 lowercase hex); run: sha256sum " + solver.script,
                )
                continue
            self.check_file_sha(f"{key}.script", solver.script, solver.sha256, f"{key}.sha256")

    def inside_repo(self, key: str, relative: str) -> bool:
        """Files that go into an image are fingerprinted by their path in the
        repository, so they must be inside it."""
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            self.problem(key, f"'{relative}' must be a path inside the repository, relative to it")
            return False
        return True

    def check_file_sha(self, key: str, relative: str, expected: str, sha_key: str) -> None:
        path = self.repo_root / relative
        if not self.inside_repo(key, relative):
            return
        if not path.is_file():
            self.problem(
                key,
                f"file '{relative}' does not exist (looked in {self.repo_root}); create it or "
                "fix the path",
            )
            return
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            self.problem(
                sha_key,
                f"does not match '{relative}' (its sha256 is {actual}); check the script, then "
                f'set sha256 = "{actual}"',
            )

    def check_python(self, python: Python) -> None:
        if not PY_VERSION_RE.match(python.version):
            self.problem(
                "python.version",
                f"'{python.version}' is not a Python version like \"3.11\"; use major.minor",
            )
        if not python.venv.startswith("/"):
            self.problem(
                "python.venv",
                f"'{python.venv}' must be an absolute path on the image, e.g. /opt/everest/venv",
            )
        for i, pin in enumerate(python.packages):
            if not PIN_RE.match(pin):
                self.problem(
                    f"python.packages[{i}]",
                    f"'{pin}' is not pinned; write it as name==version so the image is "
                    "reproducible",
                )

    def check_system(self, system: System) -> None:
        if not USER_RE.match(system.user):
            self.problem(
                "system.user",
                f"'{system.user}' is not a valid Linux user name; use lowercase letters, "
                "digits, '-' or '_'",
            )
        if not re.match(r"^[A-Za-z0-9_+/-]+$", system.timezone):
            self.problem(
                "system.timezone",
                f"'{system.timezone}' is not a time zone name like UTC or Europe/Moscow",
            )
        for i, package in enumerate(system.apt_packages):
            if not re.match(r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$", package):
                self.problem(
                    f"system.apt_packages[{i}]",
                    f"'{package}' is not an apt package name (optionally name=version)",
                )
        if isinstance(system.ca_certificates, str):
            if system.ca_certificates not in ("host", "none"):
                self.problem(
                    "system.ca_certificates",
                    f'\'{system.ca_certificates}\' is not valid; use "host", "none" or a list '
                    "of .crt files in the repository",
                )
        else:
            for i, cert in enumerate(system.ca_certificates):
                if not self.inside_repo(f"system.ca_certificates[{i}]", cert):
                    continue
                if not (self.repo_root / cert).is_file():
                    self.problem(
                        f"system.ca_certificates[{i}]",
                        f"file '{cert}' does not exist; fix the path (relative to the repository)",
                    )

    def check_secrets(self, spec: ImageSpec) -> None:
        for name, secret in spec.secrets.items():
            key = f"secrets.{name}"
            if not SECRET_NAME_RE.match(name):
                self.problem(
                    key,
                    f"'{name}' is not a valid secret name; use lowercase letters, digits and '_'",
                )
            if secret.mode not in SECRET_MODES:
                near = difflib.get_close_matches(secret.mode, SECRET_MODES, n=1)
                hint = f"did you mean '{near[0]}'? " if near else ""
                self.problem(
                    f"{key}.mode",
                    f"unknown mode '{secret.mode}'; {hint}use one of: {', '.join(SECRET_MODES)}",
                )
            if secret.mode == "metadata" and not CLOUD_NAME_RE.match(secret.metadata_key or "-"):
                self.problem(
                    f"{key}.metadata_key", 'mode "metadata" needs metadata_key = "<lowercase-key>"'
                )
            if secret.mode in ("env", "embed") and not ENV_NAME_RE.match(secret.env or "-"):
                what = (
                    "the task's environment variable"
                    if secret.mode == "env"
                    else "the build's environment variable holding the value"
                )
                self.problem(
                    f"{key}.env", f'mode "{secret.mode}" needs env = "NAME" ({what}, uppercase)'
                )
            elif secret.env and not ENV_NAME_RE.match(secret.env):
                self.problem(
                    f"{key}.env",
                    f"'{secret.env}' is not an environment variable name; use uppercase "
                    "letters, digits and '_'",
                )
            if secret.path and not secret.path.startswith("/"):
                self.problem(
                    f"{key}.path", f"'{secret.path}' must be an absolute path on the image"
                )

    def check_agent(self, spec: ImageSpec) -> None:
        agent = spec.agent
        if agent.sha256 and not SHA256_RE.match(agent.sha256):
            self.problem("agent.sha256", "must be the archive's sha256 (64 lowercase hex)")
        if agent.token_secret and agent.token_secret not in spec.secrets:
            near = difflib.get_close_matches(agent.token_secret, list(spec.secrets), n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            self.problem(
                "agent.token_secret",
                f"no secret named '{agent.token_secret}'; {hint}add "
                f"[secrets.{agent.token_secret}] or fix the name",
            )
        template = agent.config_template
        if self.inside_repo("agent.config_template", template) and not (
            (self.repo_root / template).is_file()
        ):
            self.problem(
                "agent.config_template",
                f"file '{agent.config_template}' does not exist; fix the path (relative to the "
                "repository)",
            )
        if not agent.install_dir.startswith("/"):
            self.problem(
                "agent.install_dir", f"'{agent.install_dir}' must be an absolute path on the image"
            )
        if "://" not in agent.source and not (self.repo_root / agent.source).exists():
            self.problem(
                "agent.source", f"'{agent.source}' is neither a URL nor an existing path; fix it"
            )

    def check_build(self, spec: ImageSpec) -> None:
        build, base = spec.build, spec.base
        if build.local.compression not in COMPRESSIONS:
            self.problem(
                "build.local.compression",
                f"'{build.local.compression}' is not supported; use one of: "
                f"{', '.join(COMPRESSIONS)}",
            )
        for provider, zones in (("gcp", build.gcp.zones), ("yandex", build.yandex.zones)):
            if not zones:
                self.problem(f"build.{provider}.zones", "empty; list at least one zone to build in")
            for i, zone in enumerate(zones):
                if not re.match(r"^[a-z]+(-[a-z0-9]+)+$", zone):
                    self.problem(
                        f"build.{provider}.zones[{i}]",
                        f"'{zone}' is not a zone name like europe-west1-b / ru-central1-a",
                    )
        for provider, size in (
            ("gcp", build.gcp.disk_size_gb),
            ("yandex", build.yandex.disk_size_gb),
        ):
            if not 10 <= size <= 4096:
                self.problem(
                    f"build.{provider}.disk_size_gb", f"{size} is out of range; use 10..4096"
                )
        if build.yandex.core_fraction not in (5, 20, 50, 100):
            self.problem(
                "build.yandex.core_fraction",
                f"{build.yandex.core_fraction} is not one of 5, 20, 50, 100",
            )
        if not base.gcp.image and not (base.gcp.image_family and base.gcp.image_project):
            self.problem("base.gcp", "set image_family and image_project, or pin image")
        if not base.yandex.image_id and not (
            base.yandex.image_family and base.yandex.image_folder_id
        ):
            self.problem("base.yandex", "set image_family and image_folder_id, or pin image_id")
        for key, name in (
            ("base.gcp.image", base.gcp.image),
            ("base.gcp.image_family", base.gcp.image_family),
            ("base.yandex.image_family", base.yandex.image_family),
        ):
            if name and not CLOUD_NAME_RE.match(name):
                self.problem(
                    key,
                    f"'{name}' is not a valid image name/family (lowercase letters, digits, '-')",
                )
        if not re.match(r"^[a-z]+$", base.local.suite):
            self.problem(
                "base.local.suite", f"'{base.local.suite}' is not a Debian suite name like bookworm"
            )
        if not base.local.mirror.startswith(("http://", "https://", "file:")):
            self.problem(
                "base.local.mirror",
                f"'{base.local.mirror}' is not a mirror URL like http://deb.debian.org/debian",
            )
        for key, value in (
            ("resource.max_instances", spec.resource.max_instances),
            ("resource.task_slots", spec.resource.task_slots),
        ):
            if value < 1:
                self.problem(key, f"{value} must be at least 1")


_BAD = object()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _related(key: str, other: str) -> bool:
    """True when one key is the other or lies inside it ('a' ~ 'a.b' ~ 'a[0].b')."""
    short, long = sorted((key, other), key=len)
    return long == short or long.startswith((short + ".", short + "["))
