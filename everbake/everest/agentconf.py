"""The agent config baked into an image, and whether it lets a command run.

The agent runs a task's command only when it matches one of
``security.allowedCommands`` (regexes; shared/facts/everest.md). 50-agent.sh
installs the rendered config as ``<agent install_dir>/conf/agent.conf.template``.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError
from everbake.fingerprint import built_from
from everbake.spec import ImageSpec
from everbake.staging import render_agent_conf

CONF_IN_AGENT_DIR = "conf/agent.conf.template"


class AppError(EverbakeError):
    """An application that does not fit its image, or a broken app directory."""


@dataclass(frozen=True)
class AgentConfig:
    allowed: tuple[str, ...]
    where: str  # for messages: the file inside the image, or the spec's template


def parse(text: str, where: str) -> AgentConfig:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AppError(f"{where}: the agent config is not JSON ({exc})") from None
    allowed = (
        (data.get("security") or {}).get("allowedCommands") if isinstance(data, dict) else None
    )
    if not isinstance(allowed, list) or not all(isinstance(rx, str) for rx in allowed):
        raise AppError(f"{where}: security.allowedCommands is missing or not a list of regexes")
    return AgentConfig(tuple(allowed), where)


def conf_path_in_image(spec_canonical: Mapping[str, Any]) -> str:
    install_dir = str((spec_canonical.get("agent") or {}).get("install_dir", "/opt/everest/agent"))
    return f"{install_dir.strip('/')}/{CONF_IN_AGENT_DIR}"


def from_root(root: Path, spec_canonical: Mapping[str, Any]) -> AgentConfig | None:
    """The config inside a mounted or unpacked image root, or None without the agent."""
    path = root / conf_path_in_image(spec_canonical)
    if not path.is_file():
        return None
    return parse(path.read_text(encoding="utf-8"), f"/{conf_path_in_image(spec_canonical)}")


def from_tarball(tarball: Path, spec_canonical: Mapping[str, Any]) -> AgentConfig | None:
    """The config inside a local image (.tar.zst, read as a stream), or None."""
    wanted = conf_path_in_image(spec_canonical)
    proc = subprocess.Popen(["zstd", "-dcq", str(tarball)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.name.removeprefix("./") == wanted and member.isfile():
                    handle = tar.extractfile(member)
                    text = handle.read().decode("utf-8") if handle else ""
                    return parse(text, f"/{wanted} in {tarball.name}")
    except (tarfile.TarError, OSError) as exc:
        raise AppError(f"{tarball}: cannot read the image ({exc}); rebuild it") from None
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    return None


def baked(spec: ImageSpec, record: Mapping[str, Any]) -> tuple[AgentConfig, str]:
    """The agent config of the image of ``record`` and how it was found (one line).

    A local image is read; otherwise (a cloud image, or a local one built
    without the agent) the spec's template is rendered, which is exactly what was
    baked when the image's fingerprint is the spec's (the template is one of its
    inputs)."""
    canonical = record.get("spec_canonical") or spec.to_canonical()
    tarball = Path(str((record.get("artifact") or {}).get("path", "")))
    if tarball.is_file():  # only a local build record names an image file
        found = from_tarball(tarball, canonical)
        if found is not None:
            return found, f"read from the image ({found.where})"
    built = (record.get("fingerprints") or {}).get("image", "")
    if not built_from(spec, built, record.get("agent_content")):
        raise AppError(
            f"image {record.get('image_name') or record.get('image')} was built from an older "
            f"{spec.name} spec; rebuild it (invoke build-image --image {spec.name}) so the "
            "agent config it holds is known"
        )
    where = spec.agent.config_template
    return parse(render_agent_conf(spec), where), f"the spec's {where} (same fingerprint)"


def suggest(command: str) -> str:
    """A regex admitting ``command``'s program and first word with any arguments."""
    words = command.split()
    head = " ".join(re.escape(w) for w in words[:2]) if len(words) > 1 else re.escape(command)
    return f"{head} .*" if len(words) > 2 else head


def check(commands: Iterable[str], config: AgentConfig, fix_in: str) -> None:
    """Every command must fully match one allowedCommands regex; else one line
    naming the command, the config and the regex to add."""
    for command in commands:
        if not any(_matches(rx, command) for rx in config.allowed):
            raise AppError(
                f"command {command!r} matches no security.allowedCommands regex of the agent "
                f"config ({config.where}); add {json.dumps(suggest(command))} to "
                f"allowedCommands in {fix_in} and rebuild the image"
            )


def _matches(regex: str, command: str) -> bool:
    try:
        return re.fullmatch(regex, command) is not None
    except re.error:
        return False
