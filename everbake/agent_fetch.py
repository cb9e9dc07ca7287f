"""Fetching the Everest agent archive an image spec names: a download (or a local
path, packed reproducibly), checked against its pin, and the Pythons it supports.

This is the network side of a build's preparation; copying what was fetched into
the staging directory is everbake.staging's.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from everbake import agent_python
from everbake.errors import BuildError
from everbake.files import sha256_file
from everbake.fingerprint import NO_AGENT
from everbake.spec import ImageSpec
from everbake.spec.python_range import Supported
from everbake.ui import say

_FETCH_TIMEOUT = 20.0


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
