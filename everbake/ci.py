"""CI child pipelines from the plan (`invoke plan --format json`).

The parent pipeline (.gitlab-ci.yml) saves the plan, then triggers what this
writes: one build job per image x provider (each runs `build-image`, which bakes
only when the fingerprint is missing and otherwise says "up to date"), a
publish job for each cloud image the plan says will be built, and, for the
scheduled pipeline, one gc job per image x provider. Pure: rows in, a
pipeline (plain data) out; GitLab reads JSON as YAML, so no YAML writer.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake.errors import EverbakeError
from everbake.files import write_atomic
from everbake.providers import CLOUDS
from everbake.providers.local import Local

# What every generated job runs first: the same set-up as a checkout (idempotent).
SETUP = "scripts/setup"
INVOKE = ".venv/bin/invoke"
# An Everest resource starts cloud VMs from an image; a local image has no resource.
PUBLISHED = CLOUDS
UP_TO_DATE = "up to date"
_ROW_KEYS = ("image", "provider", "layer", "action")


@dataclass(frozen=True)
class Target:
    """One image on one provider, with the plan's action per layer."""

    image: str
    provider: str
    actions: Mapping[str, str]

    @property
    def builds(self) -> bool:
        """Whether the plan expects a bake (an unknown lookup counts as one)."""
        return self.actions.get("image") != UP_TO_DATE

    @property
    def summary(self) -> str:
        layers = ", ".join(f"{layer}: {action}" for layer, action in self.actions.items())
        return f"{self.image} on {self.provider}: {layers}"


def load_plan(path: Path) -> list[dict[str, Any]]:
    """The rows of a plan file written by `invoke plan --format json`."""
    fix = f"write it with: invoke plan --format json > {path}"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EverbakeError(f"--plan {path}: no such file; {fix}") from None
    except (OSError, ValueError) as exc:
        raise EverbakeError(f"--plan {path}: not a plan ({exc}); {fix}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise EverbakeError(f"--plan {path}: not a list of plan rows; {fix}")
    for number, row in enumerate(rows, 1):
        lacking = [key for key in _ROW_KEYS if not isinstance(row.get(key), str)]
        if lacking:
            raise EverbakeError(
                f"--plan {path}: row {number} has no {', '.join(lacking)}; "
                f"{fix} (without --offline? rows need their action)"
            )
    if not rows:
        raise EverbakeError(f"--plan {path}: no rows (no image specs?); {fix}")
    return rows


def targets(rows: Iterable[Mapping[str, Any]]) -> list[Target]:
    """Plan rows grouped by image and provider, in the plan's order."""
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        grouped.setdefault((row["image"], row["provider"]), {})[row["layer"]] = row["action"]
    return [Target(image, provider, actions) for (image, provider), actions in grouped.items()]


def job_name(kind: str, target: Target) -> str:
    return f"{kind} {target.image} {target.provider}"


def _invoke(task: str, *args: str) -> str:
    return shlex.join([INVOKE, task, *args])


def _where(target: Target) -> list[str]:
    return ["--image", target.image, "--provider", target.provider]


def build_pipeline(found: Sequence[Target]) -> dict[str, Any]:
    """The child pipeline of a push to the default branch."""
    pipeline: dict[str, Any] = {"stages": ["build", "publish"]}
    for target in found:
        check = _invoke("check", "--provider", target.provider)
        pipeline[job_name("build", target)] = {
            "stage": "build",
            "script": [
                shlex.join(["echo", f"plan: {target.summary}"]),
                SETUP,
                # A missing credential fails here, with the line that says how to fix it.
                check,
                _invoke("build-image", *_where(target)),
            ],
            # The build record is what publish reads (never retyped ids).
            "artifacts": {"paths": [f"dist/builds/{target.provider}/"], "expire_in": "1 week"},
        }
        if target.builds and target.provider in PUBLISHED:
            pipeline[job_name("publish", target)] = {
                "stage": "publish",
                "needs": [{"job": job_name("build", target), "artifacts": True}],
                "script": [SETUP, check, _invoke("publish-resource", *_where(target))],
            }
    return pipeline


def gc_pipeline(found: Sequence[Target], keep: str) -> dict[str, Any]:
    """The child pipeline of the schedule: retire old images, keeping the newest ``keep``.

    ``keep`` may be a CI variable reference such as "$EVERBAKE_GC_KEEP"."""
    pipeline: dict[str, Any] = {"stages": ["gc"]}
    for target in found:
        script = [SETUP, _invoke("check", "--provider", target.provider)]
        gc = [INVOKE, "gc-images", *_where(target)]
        # shlex would quote a variable reference; the value is the runner's to expand.
        script.append(f"{shlex.join(gc)} --keep {keep}")
        if target.provider in CLOUDS:  # a cloud base layer is a family per spec
            script.append(f"{shlex.join(gc)} --layer base --keep {keep}")
        pipeline[job_name("gc", target)] = {"stage": "gc", "script": script}
    if any(target.provider not in CLOUDS for target in found):
        # Local base caches are shared by all specs: one job prunes them all.
        prune = [INVOKE, "gc-images", "--provider", Local.name, "--layer", "base"]
        prune += ["--image", found[0].image]
        pipeline["gc local base caches"] = {
            "stage": "gc",
            "script": [SETUP, f"{shlex.join(prune)} --keep {keep}"],
        }
    return pipeline


def github_matrix(found: Sequence[Target]) -> dict[str, Any]:
    """GitHub Actions matrices (.github/workflows/images.yml): every image x provider
    builds (and gc), the cloud images the plan builds are published."""

    def rows(chosen: Iterable[Target]) -> dict[str, Any]:
        return {"include": [{"image": t.image, "provider": t.provider} for t in chosen]}

    return {
        "build": rows(found),
        "publish": rows(t for t in found if t.builds and t.provider in PUBLISHED),
    }


def write_pipelines(
    plan: Path,
    build_out: Path,
    gc_out: Path | None = None,
    keep: str = "3",
    matrix_out: Path | None = None,
) -> list[Target]:
    """Read the plan, write the build (and gc) child pipelines and the GitHub
    matrices when asked; return the targets."""
    if not re.fullmatch(r"[0-9]+|\$[A-Za-z_][A-Za-z0-9_]*", keep):
        raise EverbakeError(f"--keep {keep}: give a number or a CI variable such as $GC_KEEP")
    found = targets(load_plan(plan))
    write_atomic(build_out, json.dumps(build_pipeline(found), indent=2) + "\n")
    if gc_out is not None:
        write_atomic(gc_out, json.dumps(gc_pipeline(found, keep), indent=2) + "\n")
    if matrix_out is not None:
        write_atomic(matrix_out, json.dumps(github_matrix(found)) + "\n")
    return found
