"""The spec's rules: checks across fields and against the repository, and the
problem list they (and type conversion) report into."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from everbake.spec.python_range import DEBIAN_RELEASES, SUITE_RELEASE, check_specifier
from everbake.spec.schema import (
    CLOUD_NAME_RE,
    COMPRESSION_LEVELS,
    COMPRESSIONS,
    ENV_NAME_RE,
    INSTALL_METHODS,
    NAME_SUFFIX_LEN,
    PIN_RE,
    PY_VERSION_RE,
    SECRET_MODES,
    SECRET_NAME_RE,
    SHA256_RE,
    SPEC_NAME_RE,
    USER_RE,
    Build,
    ImageSpec,
    Python,
    System,
)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """The hint "did you mean 'x'? " naming the closest choice; "" when none is close."""
    near = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean '{near[0]}'? " if near else ""


class Problems:
    """Every problem of one spec, each 'file:line: key: message'."""

    def __init__(self, where: Callable[[str], str]):
        self.where = where  # key -> 'file:line' (or just 'file')
        self.lines: list[str] = []
        # Keys whose value was unusable and replaced by a placeholder so that every
        # other check still runs: problems about them or their tables are not repeated.
        self.placeholders: set[str] = set()

    def add(self, key: str, message: str) -> None:
        if any(_related(key, bad) for bad in self.placeholders):
            return
        self.lines.append(f"{self.where(key)}: {key}: {message}")


def check(spec: ImageSpec, problems: Problems) -> None:
    """Report what the field types cannot say: formats, ranges, references, files."""
    _Rules(problems, spec.repo_root).check(spec)


class _Rules:
    def __init__(self, problems: Problems, repo_root: Path):
        self.problem = problems.add
        self.repo_root = repo_root

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
        self.check_resource(spec)
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
                hint = did_you_mean(solver.install, INSTALL_METHODS)
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
                hint = did_you_mean(secret.mode, SECRET_MODES)
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
            hint = did_you_mean(agent.token_secret, list(spec.secrets))
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
        problem = check_specifier(agent.python_requires)
        if problem:
            self.problem(
                "agent.python_requires",
                f"'{agent.python_requires}' {problem}; write a range like \">=3.6,<3.10\"",
            )
        if agent.python and not agent.python.startswith("/"):
            self.problem(
                "agent.python",
                f"'{agent.python}' must be an absolute path on the image (e.g. "
                "/usr/bin/python3.9), or leave it out for the base's python3",
            )
        if "://" not in agent.source and not (self.repo_root / agent.source).exists():
            self.problem(
                "agent.source", f"'{agent.source}' is neither a URL nor an existing path; fix it"
            )

    def check_compression_level(self, method: str, level: int) -> None:
        levels = COMPRESSION_LEVELS[method]
        key = "build.local.compression_level"
        if levels is None:
            if level:
                self.problem(key, f'compression "{method}" has no levels; remove compression_level')
        elif level and not levels[0] <= level <= levels[1]:
            self.problem(
                key,
                f"{level} is out of range for {method}; use {levels[0]}..{levels[1]} "
                f"(or leave it out for {method}'s default, {levels[2]})",
            )

    def check_base_release(self, spec: ImageSpec) -> None:
        """Every provider's base is the same Debian release, whose python3 is [python] version."""
        base = spec.base
        release = SUITE_RELEASE.get(base.local.suite)
        if release is None:
            return  # a suite we do not know: its Python is checked when the base bakes
        suite, python = DEBIAN_RELEASES[release]
        if spec.python.version != python and PY_VERSION_RE.match(spec.python.version):
            self.problem(
                "python.version",
                f"'{spec.python.version}' but base.local.suite '{suite}' (Debian {release}) has "
                f'Python {python}; set [python] version = "{python}" or pick the base whose '
                f"python3 is {spec.python.version} ({_release_with(spec.python.version)})",
            )
        for key, name in (
            ("base.gcp.image", base.gcp.image),
            ("base.gcp.image_family", base.gcp.image_family if not base.gcp.image else ""),
            (
                "base.yandex.image_family",
                base.yandex.image_family if not base.yandex.image_id else "",
            ),
        ):
            match = re.match(r"^debian-(\d+)(-|$)", name)
            if match and match.group(1) != release:
                other = DEBIAN_RELEASES.get(match.group(1))
                what = f" ({other[0]}, Python {other[1]})" if other else ""
                self.problem(
                    key,
                    f"'{name}' is Debian {match.group(1)}{what} but base.local.suite is "
                    f"'{suite}' (Debian {release}, Python {python}); use debian-{release} here or "
                    f"the matching suite, so every provider bakes the same Python",
                )

    def check_subnets(self, build: Build) -> None:
        """Subnets per region (GCE) and per zone (Yandex) that match the zones listed,
        refused here, before any VM starts."""
        gcp, yandex = build.gcp, build.yandex
        regions = sorted({zone.rpartition("-")[0] for zone in gcp.zones})
        if gcp.subnetworks and gcp.subnetwork:
            self.problem(
                "build.gcp.subnetwork",
                "set either subnetwork or subnetworks = { region = name }, not both",
            )
        elif gcp.subnetwork and len(regions) > 1:
            self.problem(
                "build.gcp.subnetwork",
                f"one subnetwork for zones in {len(regions)} regions ({', '.join(regions)}): "
                "a subnetwork belongs to one region; set build.gcp.subnetworks = "
                "{ " + ", ".join(f'"{r}" = "..."' for r in regions) + " } or none",
            )
        if gcp.subnetworks:
            self.match_keys("build.gcp.subnetworks", gcp.subnetworks, regions, "region")
        if yandex.subnets and yandex.subnet_id:
            self.problem(
                "build.yandex.subnet_id",
                "set either subnet_id or subnets = { zone = id }, not both",
            )
        elif yandex.subnet_id and len(yandex.zones) > 1:
            self.problem(
                "build.yandex.subnet_id",
                f"a subnet belongs to one zone, but build.yandex.zones lists "
                f"{len(yandex.zones)}: set build.yandex.subnets = "
                "{ " + ", ".join(f'"{z}" = "..."' for z in yandex.zones) + " }",
            )
        if yandex.subnets:
            self.match_keys("build.yandex.subnets", yandex.subnets, list(yandex.zones), "zone")

    def match_keys(self, key: str, table: Mapping[str, str], wanted: list[str], noun: str) -> None:
        missing = [w for w in wanted if w not in table]
        extra = sorted(k for k in table if k not in wanted)
        if missing:
            self.problem(key, f"no entry for {noun} {', '.join(missing)} (one per {noun} listed)")
        if extra:
            self.problem(
                key, f"{', '.join(extra)}: not a {noun} of the zones listed ({', '.join(wanted)})"
            )

    def check_build(self, spec: ImageSpec) -> None:
        build, base = spec.build, spec.base
        if build.local.compression not in COMPRESSIONS:
            self.problem(
                "build.local.compression",
                f"'{build.local.compression}' is not supported; use one of: "
                f"{', '.join(COMPRESSIONS)}",
            )
        else:
            self.check_compression_level(build.local.compression, build.local.compression_level)
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
        self.check_gcp_account("build.gcp", build.gcp.service_account, build.gcp.scopes)
        self.check_subnets(build)
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
        self.check_base_release(spec)
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

    def check_resource(self, spec: ImageSpec) -> None:
        gcp, yandex = spec.resource.gcp, spec.resource.yandex
        self.check_gcp_account("resource.gcp", gcp.service_account, gcp.scopes)
        account = yandex.service_account_id
        # Yandex resource ids: lowercase letters and digits (ajeXXXX...), at most 50.
        if (
            account
            and not self.refuse_key("resource.yandex.service_account_id", account)
            and not re.match(r"^[a-z0-9]{1,50}$", account)
        ):
            self.problem(
                "resource.yandex.service_account_id",
                f"'{account}' is not a service account id like ajelprpohp7r8e1pv7m2 "
                "(yc iam service-account get NAME shows it)",
            )

    def check_gcp_account(self, table: str, account: str, scopes: tuple[str, ...]) -> None:
        """A GCE service account given by its email, and the OAuth scopes it gets."""
        key = f"{table}.service_account"
        if (
            account
            and not self.refuse_key(key, account)
            and not re.match(r"^[^@\s]+@[^@\s]+\.[a-z]+$", account)
        ):
            self.problem(
                key,
                f"'{account}' is not a service account email "
                "(name@project.iam.gserviceaccount.com)",
            )
        if scopes and not account:
            self.problem(
                f"{table}.scopes",
                f"set {key} too: without one the VM has no service account, and no scopes",
            )
        for i, scope in enumerate(scopes):
            if not scope.startswith("https://www.googleapis.com/auth/"):
                self.problem(
                    f"{table}.scopes[{i}]",
                    f"'{scope}' is not an OAuth scope URL like "
                    "https://www.googleapis.com/auth/devstorage.read_only",
                )

    def refuse_key(self, key: str, value: str) -> bool:
        """True (and one problem that never echoes the value) when ``value`` looks like a
        service account key rather than a reference to the account."""
        text = value.strip()
        looks_like_key = (
            "private_key" in text
            or "PRIVATE KEY" in text
            or text.startswith("{")
            or text.lower().endswith((".json", ".pem", ".p12"))
        )
        if looks_like_key:
            self.problem(
                key,
                "this looks like a service account key (JSON, PEM or a key file); give "
                "the account's email or id instead, never a key",
            )
        return looks_like_key


def _release_with(python: str) -> str:
    for release, (suite, version) in DEBIAN_RELEASES.items():
        if version == python:
            return f"{suite}, debian-{release}"
    return "none of " + ", ".join(f"{s} {v}" for s, v in DEBIAN_RELEASES.values())


def _related(key: str, other: str) -> bool:
    """True when one key is the other or lies inside it ('a' ~ 'a.b' ~ 'a[0].b')."""
    short, long = sorted((key, other), key=len)
    return long == short or long.startswith((short + ".", short + "["))
