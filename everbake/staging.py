"""The staging directory: every file the provisioning scripts read (docs/internals.md),
for the local provider's chroot and a cloud's build VM alike.

Built on the host before Packer runs (`stage`, `stage_layer`) from what the build
already has: the fetched agent (everbake.agent_fetch) and the runtime wheel
(everbake.runtime_wheel). Staging only copies and renders files: no network, no
subprocess. Embed-mode secrets are never staged here: their values exist only in
the build step's environment (everbake.localbuild.steps writes them into the root
filesystem; on a cloud, Packer writes them on the VM).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from everbake.agent_fetch import ResolvedAgent
from everbake.errors import BuildError, RenderError, SpecError
from everbake.files import write_json
from everbake.image_info import IMAGE_INFO, image_info
from everbake.spec import ImageSpec
from everbake.templating import render_standard

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
AGENT_ARCHIVE = "agent.tar.gz"
AGENT_PYTHONS = "agent-pythons"  # the X.Y versions the agent supports, space-separated


# --- CA certificates, solver scripts, image.json ------------------------------------


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


def stage(
    spec: ImageSpec,
    staging: Path,
    *,
    image: str,
    fingerprints: Mapping[str, str],
    scripts: Iterable[Path],
    agent: ResolvedAgent,
    wheel: Path,
    provider: str = "",
) -> Staged:
    """Fill ``staging`` (emptied first) with everything but secret values: the
    scripts, the runtime ``wheel``, the ``agent`` the build fetched (its content is
    in the fingerprint), the agent's config, CA certificates, solver scripts and
    image.json."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / "scripts").mkdir()
    for script in scripts:
        shutil.copyfile(script, staging / "scripts" / script.name)
    shutil.copyfile(wheel, staging / wheel.name)
    if agent.archive is not None:
        shutil.copyfile(agent.archive, staging / AGENT_ARCHIVE)
    if agent.supported is not None:
        # 50-agent.sh checks an interpreter whose version is known only in the image.
        (staging / AGENT_PYTHONS).write_text(" ".join(agent.supported.allowed()) + "\n")
    (staging / "agent.conf").write_text(render_agent_conf(spec), encoding="utf-8")
    ca = stage_base_files(spec, staging)
    info = image_info(spec, image, fingerprints, agent.content, provider)
    write_json(staging / IMAGE_INFO, info)
    return Staged(agent_sha256=agent.sha256, wheel=wheel.name, ca_certificates=ca)


def stage_base_layer(spec: ImageSpec, directory: Path) -> None:
    """Fill ``directory`` (emptied first) with what a cloud base layer's scripts read
    on the build VM: its CA certificates and solver scripts."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    stage_base_files(spec, directory)
