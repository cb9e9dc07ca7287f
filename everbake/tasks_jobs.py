"""invoke tasks: Everest jobs from the terminal (run, status, fetch, cancel, resubmit, sweep).

Thin: flags -> one library call (everbake.everest.runjob / sweep) -> exit status
from the job's final state (DONE 0, FAILED 1, CANCELLED 130). Outputs land in
<runs>/<job-id>/ and <runs>/sweep-<id>/, the configured runs dir (everbake.runs_dir,
default runs/ under the current directory).
"""

from __future__ import annotations

from pathlib import Path

import invoke

from everbake.taskutil import settings_of, task

HELP_APP = "the Everest application: OWNER/ALIAS or its 24-hex id"
HELP_PARAMS = "the model's parameters: a JSON file, or a JSON object inline"
HELP_DATA = "input data archive (.zip or .tar.gz), uploaded first"
HELP_RESOURCE = "run on this Everest resource (24-hex id); default: the app's"


def _api(c: invoke.Context):  # -> JobsApi; imports kept lazy for a fast --list
    from everbake.everest.jobsapi import JobsApi
    from everbake.everest.session import open_client

    return JobsApi(open_client(c))


def _runs(c: invoke.Context) -> Path:
    """The configured runs dir; under the current directory, shown relative to it
    (what the tasks print and --resume takes stays short: runs/<job-id>/...)."""
    runs = settings_of(c).runs_root()
    return runs.relative_to(Path.cwd()) if runs.is_relative_to(Path.cwd()) else runs


def _exit(outcome) -> None:  # a runjob.Outcome
    from everbake.everest import jobs

    if outcome.exit_code:
        again = f"'invoke resubmit {outcome.job_id}'"
        why = {
            jobs.PREEMPTED: f" (its VM was preempted: {again})",
            jobs.NO_OUTPUTS: f" with no outputs (its VM may have vanished: {again})",
        }.get(outcome.reason, "")
        raise invoke.Exit(f"job {outcome.job_id} ended {outcome.state}{why}", outcome.exit_code)


@task(
    help={
        "app": HELP_APP,
        "version": "model version: a commit SHA, tag or branch",
        "params": HELP_PARAMS,
        "data": HELP_DATA,
        "resource": HELP_RESOURCE,
        "name": "job name prefix (default: the app's alias); time and a random part follow",
        "debug": "ask the runtime for debug.zip",
        "no_wait": "submit, print the job id and return",
    }
)
def run_job(
    c, app, version, params, data=None, resource=None, name=None, debug=False, no_wait=False
):
    """Submit a job, follow it live, download its outputs into runs/<job-id>/."""
    from everbake.everest import jobs, runjob

    sub = jobs.Submission(
        app=app,
        version=version,
        name=jobs.job_name(app, name or ""),
        params=jobs.load_params(params),
        data=jobs.check_data(data),
        resource=resource,
        debug=debug,
    )
    outcome = runjob.run_job(_api(c), sub, _runs(c), wait=not no_wait)
    if not no_wait:
        _exit(outcome)


HELP_JOB = "job id, or the unique name everbake gave the job"


@task(help={"job": HELP_JOB})
def job_status(c, job):
    """Show a job's state, last status and outputs."""
    from everbake.everest import runjob

    runjob.job_status(_api(c), job)


@task(help={"job": HELP_JOB})
def fetch_job(c, job):
    """Download an ended job's outputs into runs/<job-id>/."""
    from everbake.everest import runjob

    runjob.fetch_job(_api(c), job, _runs(c))


@task(help={"job": HELP_JOB})
def cancel_job(c, job):
    """Ask Everest to cancel a job."""
    from everbake.everest import runjob

    runjob.cancel_job(_api(c), job)


@task(
    help={
        "job": "the job to run again: " + HELP_JOB,
        "version": "another model version",
        "params": "other parameters: a JSON file, or a JSON object inline",
        "data": "another " + HELP_DATA,
        "resource": "another resource (24-hex id)",
    }
)
def resubmit(c, job, version=None, params=None, data=None, resource=None):
    """Run a job again with the same inputs and resource, changing only the ones given."""
    from everbake.everest import jobs, runjob

    api = _api(c)
    sub = runjob.resubmission(
        api,
        job,
        _runs(c),
        version=version,
        params=jobs.load_params(params) if params is not None else None,
        data=jobs.check_data(data),
        resource=resource,
    )
    _exit(runjob.run_job(api, sub, _runs(c)))


@task(
    help={
        "app": HELP_APP,
        "grid": "the variations: a TOML or JSON grid file (docs/jobs.md 'Sweeps')",
        "max_parallel": "at most this many jobs submitted and not ended at once (default 4)",
        "retries": "resubmit a job whose VM was preempted up to this many times (default 2)",
        "resume": "carry on with runs/sweep-<id> without resubmitting finished jobs",
        "max_requests_per_second": "at most this many requests to Everest a second, all "
        "kinds together (default 5)",
        "image": "the image spec whose [resource] prices estimate the sweep's cost",
    }
)
def sweep(
    c,
    app=None,
    grid=None,
    max_parallel=4,
    retries=2,
    resume=None,
    max_requests_per_second=5.0,
    image=None,
):
    """Run every variation of a grid as a job; resubmit preempted ones; write a summary
    and report.html."""
    from everbake.everest.pricing import Prices
    from everbake.everest.sweep import sweep_from_flags

    settings = {}
    if image:
        prices = Prices.from_spec(settings_of(c).load_spec(image))
        settings["prices"] = prices.as_setting() if prices else {}
    outcome = sweep_from_flags(
        _api(c),
        app,
        grid,
        _runs(c),
        int(max_parallel),
        int(retries),
        resume,
        rate=_number(max_requests_per_second, "--max-requests-per-second"),
        settings=settings,
    )
    if outcome.exit_code:
        raise invoke.Exit(
            f"sweep {outcome.sweep_id}: {outcome.not_done} job(s) did not end DONE", 1
        )


def _number(value, flag: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invoke.Exit(f"{flag} {value!r}: give a number", 1) from None


def register(ns: invoke.Collection) -> None:
    for each in (run_job, job_status, fetch_job, cancel_job, resubmit, sweep):
        ns.add_task(each)
