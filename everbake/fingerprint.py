"""Fingerprints of the two layers: sha256 over everything baked into them.

Inputs are hashed as canonical JSON of plain data and file contents keyed by
paths relative to the repository, so the value is the same in any checkout, on
any machine, at any time. Build-VM-only settings (zones, machine type,
preemptible, project), how the local export compresses the tarball (the same
root filesystem, another file; it names the tarball instead) and secret values
are not inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake import provision_env
from everbake.image_info import fingerprint_view
from everbake.packer import PLUGINS
from everbake.spec import ImageSpec

# Bump when the meaning of the inputs changes (forces new names everywhere).
SCHEME = 1
# Never part of a source tree's identity.
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")


@dataclass(frozen=True)
class Fingerprints:
    base: str
    image: str

    def of(self, layer: str) -> str:
        provision_env.check_layer(layer)
        return self.base if layer == "base" else self.image

    def as_dict(self) -> dict[str, str]:
        return {"base": self.base, "image": self.image}


# The agent content of a spec whose agent is not pinned and not fetched yet: no
# image has it, so a build fetches the agent before it looks the image up.
UNRESOLVED_AGENT = "unresolved"
NO_AGENT = "none"  # the agent content of an image baked without the agent


def expected_agent(spec: ImageSpec) -> str:
    """The agent content a build of ``spec`` bakes if its source can be reached: the
    pinned sha256 (a fetch that does not match it fails), else not known yet."""
    return spec.agent.sha256 or UNRESOLVED_AGENT


def fingerprints(spec: ImageSpec, agent: str | None = None) -> Fingerprints:
    """``agent``: the agent content baked, its archive's sha256 or "none" when it was
    skipped (everbake.staging.ResolvedAgent.content); default `expected_agent`."""
    base = _digest(base_inputs(spec))
    content = expected_agent(spec) if agent is None else agent
    return Fingerprints(base=base, image=_digest(image_inputs(spec, base, content)))


def built_from(spec: ImageSpec, image_fingerprint: str, agent: str | None = None) -> bool:
    """Whether an image of ``image_fingerprint`` is what ``spec`` bakes now. ``agent``:
    the agent content its build record or image.json names; older ones name none, so
    the pinned (or expected) agent and, for an optional agent, none are tried."""
    contents = [agent] if agent else agent_candidates(spec, expected_agent(spec))
    return any(fingerprints(spec, c).image == image_fingerprint for c in contents)


def agent_candidates(spec: ImageSpec, reachable: str) -> list[str]:
    """The agent contents an image of ``spec`` may hold: ``reachable`` (what a build
    bakes when the source answers) and, for an optional agent, none."""
    return [reachable] if spec.agent.required else [reachable, NO_AGENT]


def base_inputs(spec: ImageSpec) -> dict[str, Any]:
    """OS, Python, solvers, extra packages: what the base layer bakes."""
    data = spec.to_canonical()
    root = spec.repo_root
    return {
        "scheme": SCHEME,
        "base": data["base"],
        "system": data["system"],
        "python": data["python"],
        "solvers": data["solvers"],
        # The clouds' disk size: the build tables that have one.
        "disk_size_gb": {
            p: table["disk_size_gb"]
            for p, table in data["build"].items()
            if "disk_size_gb" in table
        },
        # The cloud-only first-boot step runs in both layers; the image
        # fingerprint covers it through the base fingerprint.
        "scripts": _files(root, provision_env.cloud_scripts(root, "base")),
        "solver_scripts": _files(
            root, [root / s for s in provision_env.solver_scripts(spec).values()]
        ),
        "ca_certificates": _ca_files(spec),
        "templates": _tree(root / "templates", root, skip={"agent"}),
        "plugins": {p.name: [p.source, p.version] for p in PLUGINS},
    }


def image_inputs(spec: ImageSpec, base_fingerprint: str, agent: str) -> dict[str, Any]:
    """Base fingerprint plus agent (its settings and the content baked), runtime,
    secrets' modes, hygiene and verify."""
    data = spec.to_canonical()
    root = spec.repo_root
    return {
        "scheme": SCHEME,
        "base_fingerprint": base_fingerprint,
        "name": data["name"],
        "family": data["family"],
        "description": data["description"],
        "agent": _agent_inputs(data["agent"]),
        # What was baked, so an image built without the agent never passes for one with it.
        "agent_content": agent,
        "agent_template": _files(root, [root / spec.agent.config_template]),
        "runtime": _tree(root / spec.runtime.source, root),
        "secrets": data["secrets"],
        # The image.json staging writes into the image (its own shape is content too).
        "image_info": fingerprint_view(spec, agent),
        "scripts": _files(root, provision_env.scripts(root, "image")),
    }


def _agent_inputs(agent: dict[str, Any]) -> dict[str, Any]:
    """The agent's settings that change the image: python_requires is only checked,
    and an unset python (the base's python3) leaves the names images had before it."""
    out = {k: v for k, v in agent.items() if k != "python_requires"}
    if not out.get("python"):
        out.pop("python", None)
    return out


def _digest(inputs: dict[str, Any]) -> str:
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _files(root: Path, paths: list[Path]) -> dict[str, str]:
    """Relative path -> sha256 of the content (a missing file hashes as 'missing')."""
    out = {}
    for path in paths:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    return dict(sorted(out.items()))


def _tree(top: Path, root: Path, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    paths = []
    for path in top.rglob("*"):
        parts = set(path.relative_to(top).parts)
        if parts & (_SKIP_DIRS | skip) or any(p.endswith(_SKIP_SUFFIXES) for p in parts):
            continue
        if path.is_file():
            paths.append(path)
    return _files(root, paths)


def _ca_files(spec: ImageSpec) -> Any:
    # "host" certificates are a property of the build machine, not of the image
    # (hygiene removes them unless kept), so only the setting itself is an input.
    certs = spec.system.ca_certificates
    if isinstance(certs, str):
        return certs
    return _files(spec.repo_root, [spec.repo_root / c for c in certs])
