"""invoke tasks: diff-images and replay (thin: flags -> one library call)."""

from __future__ import annotations

import json
from pathlib import Path

import invoke

from everbake.errors import EverbakeError
from everbake.taskutil import settings_of, task


@task(
    help={
        "a": "the first image: a name, a fingerprint (12+ hex), a build record's path, "
        "or a spec name (the image it makes now)",
        "b": "the second image, named the same ways",
        "provider": "only records of this provider (when a name is built on several)",
        "format": "table (default) or json (stable: sorted keys, the same for the same images)",
    },
    positional=["a", "b"],
)
def diff_images(c, a, b, provider=None, format="table"):
    """What differs between two images: packages, solvers, scripts, runtime, agent."""
    from everbake import image_packages
    from everbake.image_lookup import find_image

    if format not in ("table", "json"):
        raise EverbakeError(f"--format {format}: use 'table' or 'json'")
    settings = settings_of(c)
    first = image_packages.describe(find_image(a, settings, provider))
    second = image_packages.describe(find_image(b, settings, provider))
    found = image_packages.diff(first, second)
    if format == "json":
        print(json.dumps(found, indent=2, sort_keys=True, ensure_ascii=False))
        return
    print(f"{first['image']} ({first['provider'] or 'not built'}) → "
          f"{second['image']} ({second['provider'] or 'not built'})")  # fmt: skip
    rows = image_packages.lines(found)
    if found["same_image"]:
        print("same image (same fingerprint)")
    elif not rows:
        print("no named input differs (the fingerprints do)")
    for row in rows:
        print(f"  {row}")
    for side in ("a", "b"):
        if not found["packages_known"][side]:
            print(f"  (image {side}: no package list in its build record)")


@task(
    help={
        "job_dir": "the job's directory, runs/<job-id> (from fetch-job, run-job or a sweep); "
        "with --job, the job's id or everbake's name for it",
        "job": "fetch the job into runs/<job-id> first (invoke replay --job ID)",
        "any_image": "run in the spec's current image when the job's is not here (and say "
        "what changed) instead of stopping",
        "debug": "run with debug=true: the replay writes debug.zip (logs, parameters, stats)",
        "model": "the model checkout to run (default: examples/transport)",
    },
    positional=["job_dir"],
)
def replay(c, job_dir, job=False, any_image=False, debug=False, model=None):
    """Run an Everest job again here, in the same image, and compare the results."""
    from everbake.everest.jobsapi import JobsApi
    from everbake.everest.session import open_client
    from everbake.replay import replay as run_replay
    from everbake.replay import report_lines

    settings = settings_of(c)
    api = None
    if job:
        from everbake.everest import runjob

        api = JobsApi(open_client(c))
        outcome = runjob.fetch_job(api, job_dir, settings.runs_root())
        job_dir = str(settings.runs_root() / outcome.job_id)
    elif _has_remote_inputs(Path(job_dir)):
        api = JobsApi(open_client(c))
    done = run_replay(
        Path(job_dir),
        settings=settings,
        api=api,
        model=Path(model) if model else None,
        any_image=any_image,
        debug=debug,
    )
    for line in report_lines(done):
        print(line)
    if not done.same:
        raise invoke.Exit("", 1)


def _has_remote_inputs(job_dir: Path) -> bool:
    """Whether the submission record names inputs on Everest (then an API is needed)."""
    try:
        record = json.loads((job_dir / "submission.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    inputs = record.get("inputs") if isinstance(record, dict) else None
    return bool(isinstance(inputs, dict) and (inputs.get("parameters") or inputs.get("data")))
