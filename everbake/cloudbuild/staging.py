"""The staging directory of a cloud layer, uploaded to the build VM before its scripts run.

The pieces are the local provider's (everbake.localbuild.staging); a cloud base
layer needs only what its scripts read (CA certificates, solver scripts), the
image layer everything else. Secret values are never staged here: they travel
as sensitive PKR_VAR_* and Packer writes them on the VM.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from everbake import naming, provision_env
from everbake.files import write_json
from everbake.fingerprint import Fingerprints
from everbake.localbuild import staging
from everbake.render import VAR_FILE, Rendered
from everbake.spec import ImageSpec


def stage_layer(spec: ImageSpec, fps: Fingerprints, layer: str, directory: Path) -> str | None:
    """Fill ``directory`` for ``layer``; return the staged agent's sha256 (None: no agent)."""
    if layer == "image":
        staged = staging.stage(
            spec,
            directory,
            image=naming.image_name(spec, fps),
            fingerprints=fps.as_dict(),
            scripts=provision_env.scripts(spec.repo_root, "image"),
        )
        return staged.agent_sha256
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    staging.stage_base_files(spec, directory)
    return None


def apply_agent(rendered: Rendered, agent_sha256: str | None) -> None:
    """Tell 50-agent.sh what staging found: the archive's sha256, or skip the agent.

    Render writes the spec's pin; an unpinned agent gets the sha256 of what was
    fetched (staging already said so), an unreachable optional one is skipped.
    """
    if rendered.layer != "image":
        return
    path = rendered.directory / VAR_FILE
    values = json.loads(path.read_text(encoding="utf-8"))
    env = dict(item.split("=", 1) for item in values.get("script_env", []))
    env.update(staging.agent_env(agent_sha256))
    values["script_env"] = [f"{k}={v}" for k, v in sorted(env.items())]
    write_json(path, values)
