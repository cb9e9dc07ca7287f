"""The staging directory: every file the provisioning scripts read (docs/internals.md),
for the local provider's chroot and a cloud's build VM alike.

Built on the host before Packer runs (`stage`, `stage_layer`), except embed-mode secrets:
their values exist only in the build step's environment, and
`write_embed_secrets` writes them 0600 straight into the root filesystem.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from everbake import agent_python, fingerprint
from everbake.errors import BuildError, RenderError, SpecError
from everbake.files import write_json
from everbake.provision_env import secret_env_name
from everbake.spec import ImageSpec
from everbake.spec.python_range import Supported
from everbake.templating import render_standard
from everbake.ui import say

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
AGENT_ARCHIVE = "agent.tar.gz"
AGENT_PYTHONS = "agent-pythons"  # the X.Y versions the agent supports, space-separated
_FETCH_TIMEOUT = 20.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- runtime wheel -----------------------------------------------------------


def build_runtime_wheel(runtime_dir: Path, dest: Path) -> Path:
    """`pip wheel --no-deps` of the everest-runtime distribution into ``dest``."""
    if not (runtime_dir / "pyproject.toml").is_file():
        raise BuildError(
            f"runtime source {runtime_dir} has no pyproject.toml (spec: runtime.source)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("everest_runtime-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="everbake-wheel-") as work:
        # Build from a copy: setuptools drops build/ and *.egg-info next to the source.
        src = Path(work) / "src"
        shutil.copytree(
            runtime_dir, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        argv += ["--quiet", "-w", str(dest), str(src)]
        done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(f"    {line}" for line in done.stderr.strip().splitlines()[-15:])
        raise BuildError(f"building the runtime wheel from {runtime_dir} failed:\n{tail}")
    wheels = sorted(dest.glob("everest_runtime-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one everest_runtime wheel in {dest}, found {len(wheels)}")
    return wheels[0]


# --- Everest agent -------------------------------------------------------------


@dataclass(frozen=True)
class AgentSource:
    source: str  # URL (may contain {ref}) or a path, relative to the repo root
    ref: str
    sha256: str | None
    required: bool


def pack_dir(directory: Path, out: Path) -> None:
    """A reproducible tar.gz of ``directory`` with one top-level folder, like a forge archive."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            arcname = f"{directory.name}/{path.relative_to(directory)}"
            tar.add(path, arcname=arcname, recursive=False, filter=normalise)
    out.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))


def fetch_agent(agent: AgentSource, dest: Path, repo_root: Path) -> tuple[Path, str] | None:
    """Put the agent archive at ``dest``; returns (path, sha256), or None when skipped.

    An unreachable source is an error when the agent is required, and a plainly
    reported skip otherwise. A sha256 mismatch is always an error.
    """
    where = agent.source.replace("{ref}", agent.ref)
    tmp = dest.with_name(dest.name + ".partial")
    try:
        if "://" in where:
            try:
                with (
                    urllib.request.urlopen(where, timeout=_FETCH_TIMEOUT) as response,
                    open(tmp, "wb") as out,
                ):
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if agent.required:
                    raise BuildError(
                        f"agent source {where} cannot be reached ({reason}); fix agent.source "
                        "in the image spec, or set agent.required = false to build without it"
                    ) from None
                say(
                    f"agent: source {where} cannot be reached ({reason}): "
                    "building WITHOUT the Everest agent (agent.required = false)"
                )
                return None
        else:
            path = Path(where) if Path(where).is_absolute() else repo_root / where
            if path.is_dir():
                pack_dir(path, tmp)
            elif path.is_file():
                shutil.copyfile(path, tmp)
            elif agent.required:
                raise BuildError(f"agent source {path} does not exist (spec: agent.source)")
            else:
                say(f"agent: {path} does not exist: building WITHOUT the Everest agent")
                return None
        actual = sha256_file(tmp)
        if agent.sha256 and actual != agent.sha256.lower():
            raise BuildError(
                f"agent archive {where} has sha256 {actual}, but the spec pins {agent.sha256} "
                "(agent.sha256): check the source, then update the pin"
            )
        if not agent.sha256:
            say(f"agent: {where} is not pinned; its sha256 is {actual} (set agent.sha256)")
        os.replace(tmp, dest)
        return dest, actual
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- CA certificates, solver scripts, image.json ------------------------------------


NO_AGENT = fingerprint.NO_AGENT


@dataclass(frozen=True)
class ResolvedAgent:
    """The agent archive a build bakes, fetched once before the image is looked up:
    its content decides the image fingerprint (everbake.fingerprint)."""

    archive: Path | None  # None: skipped (unreachable, agent.required = false)
    sha256: str | None
    supported: Supported | None = None  # the Pythons it supports (checked against the image)

    @property
    def content(self) -> str:
        return self.sha256 or NO_AGENT


def resolve_agent(spec: ImageSpec, dest: Path) -> ResolvedAgent:
    """Fetch the spec's agent to ``dest`` (checked against its pin); skipped when it
    cannot be reached and is not required, which the fingerprint then says."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    agent = AgentSource(
        source=spec.agent.source,
        ref=spec.agent.ref,
        sha256=spec.agent.sha256 or None,
        required=spec.agent.required,
    )
    fetched = fetch_agent(agent, dest, spec.repo_root)
    if not fetched:
        return ResolvedAgent(None, None)
    try:
        supported = agent_python.check(spec, fetched[0])
    except BuildError:
        fetched[0].unlink(missing_ok=True)
        raise
    return ResolvedAgent(*fetched, supported)


def ca_certificate_files(setting: str | Iterable[str], repo_root: Path) -> list[Path]:
    """The PEM files a spec's system.ca_certificates names ("host", "none" or a list)."""
    if setting == "none":
        return []
    if isinstance(setting, str):
        if setting != "host":
            raise SpecError(
                [f'system.ca_certificates: "{setting}" is not "host" or a list of PEM file paths']
            )
        return sorted(HOST_CA_DIR.rglob("*.crt")) if HOST_CA_DIR.is_dir() else []
    files = []
    for item in setting:
        path = Path(item) if Path(item).is_absolute() else repo_root / item
        if not path.is_file():
            raise SpecError([f"system.ca_certificates: {item} does not exist"])
        files.append(path)
    return files


def stage_ca_certificates(files: Iterable[Path], staging: Path) -> list[str]:
    target = staging / "ca"
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for index, path in enumerate(files):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise BuildError(f"{path} is not a PEM certificate (system.ca_certificates)")
        # update-ca-certificates only picks up *.crt; the index keeps names unique.
        name = f"{index:02d}-{path.stem}.crt"
        shutil.copyfile(path, target / name)
        names.append(name)
    return names


def stage_solver_scripts(scripts: Mapping[str, Path], staging: Path) -> list[str]:
    target = staging / "solvers"
    target.mkdir(parents=True, exist_ok=True)
    for name, path in scripts.items():
        if not path.is_file():
            raise SpecError([f"solvers.{name}.script: {path} does not exist"])
        shutil.copyfile(path, target / f"{name}.sh")
        (target / f"{name}.sh").chmod(0o755)
    return sorted(f"{name}.sh" for name in scripts)


def stage_base_files(spec: ImageSpec, staging: Path) -> list[str]:
    """What the base layer's scripts read: CA certificates and solver scripts.
    Returns the staged certificates' names."""
    ca = stage_ca_certificates(
        ca_certificate_files(spec.system.ca_certificates, spec.repo_root), staging
    )
    stage_solver_scripts(
        {s.name: spec.repo_path(s.script) for s in spec.solvers if s.install == "script"}, staging
    )
    return ca


# --- embed-mode secrets (step side) -----------------------------------------------


def write_embed_secrets(
    staging_in_root: Path, names: Iterable[str], environ: Mapping[str, str]
) -> list[str]:
    """Write each embed secret's value from ``environ`` into secrets/<name>, mode 0600."""
    target = staging_in_root / "secrets"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)
    written = []
    for name in names:
        var = secret_env_name(name)
        value = environ.get(var)
        if not value:
            raise BuildError(
                f"secret '{name}' has mode embed but its value did not reach the build step "
                f"({var} is unset); set the variable named by secrets.{name}.env and rebuild"
            )
        path = target / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value)
        path.chmod(0o600)
        written.append(name)
    return written


# --- the whole staging directory from a spec (host side) ----------------------------


@dataclass(frozen=True)
class Staged:
    agent_sha256: str | None  # None: the agent is skipped
    wheel: str
    ca_certificates: list[str]


def agent_env(agent_sha256: str | None) -> dict[str, str]:
    """What 50-agent.sh must be told after staging: the staged archive's sha256
    (the spec may not pin one), or empty values when the agent is skipped."""
    if agent_sha256 is None:
        return {"EB_AGENT_ARCHIVE": "", "EB_AGENT_SHA256": ""}
    return {"EB_AGENT_SHA256": agent_sha256}


def render_agent_conf(spec: ImageSpec) -> str:
    """The agent's config from the spec's template (standard Jinja delimiters, strict)."""
    template_path = spec.repo_path(spec.agent.config_template)
    if not template_path.is_file():
        raise SpecError([f"agent.config_template: {spec.agent.config_template} does not exist"])
    text = render_standard(template_path, {"spec": spec})
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(f"{template_path} did not render to JSON: {exc}") from None
    return text


def image_info(
    spec: ImageSpec, image: str, fingerprints: Mapping[str, str], agent_content: str
) -> dict[str, object]:
    """image.json: what the image is, the agent it holds (its archive's sha256 or
    "none") and how each secret reaches it (names only)."""
    return {
        "image": image,
        "spec": spec.name,
        "family": spec.family,
        "fingerprints": dict(fingerprints),
        "agent_content": agent_content,
        "secrets": {
            name: {"mode": s.mode, "env": s.env, "metadata_key": s.metadata_key, "path": s.path}
            for name, s in sorted(spec.secrets.items())
        },
    }


def stage(
    spec: ImageSpec,
    staging: Path,
    *,
    image: str,
    fingerprints: Mapping[str, str],
    scripts: Iterable[Path],
    agent: ResolvedAgent | None = None,
) -> Staged:
    """Fill ``staging`` (emptied first) with everything but secret values; ``agent``:
    what the build already fetched (its content is in the fingerprint), else fetched now."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / "scripts").mkdir()
    for script in scripts:
        shutil.copyfile(script, staging / "scripts" / script.name)
    wheel = build_runtime_wheel(spec.repo_path(spec.runtime.source), staging)
    if agent is None:
        agent = resolve_agent(spec, staging / AGENT_ARCHIVE)
    elif agent.archive is not None:
        shutil.copyfile(agent.archive, staging / AGENT_ARCHIVE)
    if agent.supported is not None:
        # 50-agent.sh checks an interpreter whose version is known only in the image.
        (staging / AGENT_PYTHONS).write_text(" ".join(agent.supported.allowed()) + "\n")
    (staging / "agent.conf").write_text(render_agent_conf(spec), encoding="utf-8")
    ca = stage_base_files(spec, staging)
    write_json(staging / "image.json", image_info(spec, image, fingerprints, agent.content))
    return Staged(agent_sha256=agent.sha256, wheel=wheel.name, ca_certificates=ca)


def stage_layer(
    spec: ImageSpec,
    layer: str,
    directory: Path,
    *,
    image: str,
    fingerprints: Mapping[str, str],
    scripts: Iterable[Path],
    agent: ResolvedAgent | None = None,
) -> str | None:
    """Fill ``directory`` with what ``layer``'s scripts read on a build VM; return the
    staged agent's sha256 (None: no agent). A base layer needs only its CA
    certificates and solver scripts; secret values are never staged here (they
    travel as sensitive PKR_VAR_* and Packer writes them on the VM)."""
    if layer == "image":
        staged = stage(
            spec, directory, image=image, fingerprints=fingerprints, scripts=scripts, agent=agent
        )
        return staged.agent_sha256
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    stage_base_files(spec, directory)
    return None
