"""invoke task: ci-pipeline (the plan -> GitLab child pipelines; thin, see everbake/ci.py)."""

from __future__ import annotations

from pathlib import Path

from everbake.taskutil import task
from everbake.ui import say


@task(
    help={
        "plan": "plan file written by `invoke plan --format json` (default plan.json)",
        "output": "build child pipeline to write (default build-pipeline.yml)",
        "gc_output": "also write the scheduled gc child pipeline here",
        "keep": "gc: newest images to keep, a number or a CI variable such as $GC_KEEP",
        "matrix_output": "also write the GitHub Actions matrices (build, publish) here",
    }
)
def ci_pipeline(
    c,
    plan="plan.json",
    output="build-pipeline.yml",
    gc_output=None,
    keep="3",
    matrix_output=None,
):
    """Write the CI child pipeline(s) from a saved plan: one build job per image x provider."""
    from everbake import ci  # loads on use: --list stays fast
    from everbake.build_plan import format_changes

    def optional(value: str | None) -> Path | None:
        return Path(value) if value else None

    found = ci.write_pipelines(
        Path(plan), Path(output), optional(gc_output), keep, optional(matrix_output)
    )
    for target in found:
        print(("build    " if target.builds else "current  ") + target.summary)
    changes = format_changes(ci.load_plan(Path(plan)))  # what each rebuild changes
    if changes:
        print(f"changes of the images to build:\n{changes}")
    written = [str(p) for p in (output, gc_output, matrix_output) if p]
    say(f"wrote {', '.join(written)}")
