"""The agent a bake bakes: fetched once, before the image is looked up, because its
content names the image (everbake.fingerprint)."""

from __future__ import annotations

import os
from pathlib import Path

from everbake.agent_fetch import ResolvedAgent, resolve_agent
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.spec import ImageSpec
from everbake.ui import phase


def resolve_build_agent(spec: ImageSpec, build_dir: Path) -> ResolvedAgent:
    """Fetch the agent a build of ``spec`` bakes, beside ``build_dir`` (one file per
    process: it is fetched before the build lock is taken)."""
    dest = build_dir.parent / f".{build_dir.name}.agent-{os.getpid()}.tar.gz"
    with phase(f"fetch the Everest agent ({spec.agent.source.replace('{ref}', spec.agent.ref)})"):
        return resolve_agent(spec, dest)


def agent_fingerprints(spec: ImageSpec, build_dir: Path) -> tuple[ResolvedAgent, Fingerprints]:
    """The agent a build bakes, fetched now, and the fingerprints naming that image."""
    agent = resolve_build_agent(spec, build_dir)
    return agent, fingerprints(spec, agent.content)


def drop_fetched(agent: ResolvedAgent | None) -> None:
    """Remove the archive `resolve_build_agent` fetched (staging holds its own copy)."""
    if agent is not None and agent.archive is not None:
        agent.archive.unlink(missing_ok=True)
