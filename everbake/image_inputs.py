"""What went into an image, named one by one, for people and for `diff-images`:
solver and Python package versions (as the spec pins them), every provisioning
and solver script with its sha256, the runtime's source digest and the base OS.
The same inputs the fingerprints hash (everbake.fingerprint); the build record
keeps this summary as ``inputs``, so two records can say which of them differ.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import tomllib

from everbake.fingerprint import base_inputs, expected_agent, fingerprints, image_inputs
from everbake.naming import image_name
from everbake.spec import ImageSpec


def runtime_version(spec: ImageSpec) -> str | None:
    """The version the runtime's source declares (its pyproject.toml), if readable."""
    try:
        project = tomllib.loads(
            (spec.repo_path(spec.runtime.source) / "pyproject.toml").read_text()
        )
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("project", {}).get("version")
    return str(version) if version else None


def summary(spec: ImageSpec, agent: str | None = None) -> dict[str, Any]:
    base = base_inputs(spec)
    image = image_inputs(spec, "", expected_agent(spec) if agent is None else agent)
    runtime = json.dumps(image["runtime"], sort_keys=True, separators=(",", ":"))
    packages = {}
    for pin in spec.python.packages:
        name, _, version = pin.partition("==")
        packages[name.strip()] = version.strip()
    return {
        "solvers": {s.name: s.version for s in spec.solvers},
        "python_packages": dict(sorted(packages.items())),
        "scripts": dict(
            sorted({**base["scripts"], **base["solver_scripts"], **image["scripts"]}.items())
        ),
        "runtime": hashlib.sha256(runtime.encode()).hexdigest(),
        "runtime_version": runtime_version(spec),
        "base_os": base["base"],
    }


def would_be_record(
    spec: ImageSpec, provider: str = "", agent: str | None = None
) -> dict[str, Any]:
    """What a build record of ``spec`` as it is now would say before it is built
    (no package list yet), for `diff-images`, the CI plan and replay. ``agent``: the
    agent content to assume when the spec pins none (unknown otherwise: left out)."""
    content = spec.agent.sha256 or agent
    fps = fingerprints(spec, content)
    return {
        "image": image_name(spec, fps),
        "provider": provider or None,
        "spec": spec.name,
        "fingerprints": fps.as_dict(),
        "agent_content": content,
        "inputs": summary(spec, content),
        "packages": None,
    }
