"""Sweeps against a server that loses the answers to submissions: each variation is
sent a bounded number of times and ends LOST saying how to find the job, and the
give-up timer counts only the submissions' failures."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from pathlib import Path

import pytest

from everbake.everest.sweepstate import LOST_ANSWERS
from tests.fakes import everest_jobs as fj
from tests.fakes.everest import error
from tests.jobs.conftest import APP, Site
from tests.jobs.test_sweep_run import sweep_dir

APP_POST = r"/api/apps/.*"
# A guard, far above what a bounded sweep sends: past it the fake refuses with 400,
# which stops any sweep at once (test_sweep_run: 400 stops the sweep), so a sweep that
# would resubmit without end fails the test instead of hanging it.
GUARD = 40


def grid(tmp_path: Path, xs: list[int]) -> Path:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": xs}}}))
    return path


def sweep_cli(site: Site, tmp_path: Path, xs: list[int], *more: str, env=None):
    return site.everbake(
        "sweep", "--max-requests-per-second", "100", "--app", APP,
        "--grid", str(grid(tmp_path, xs)), "--retries", "2", *more,
        cwd=tmp_path, more_env=env,
    )  # fmt: skip


def dropped_names(site: Site) -> Counter[str]:
    """The job names of the submissions whose connection the fake dropped."""
    return Counter(
        json.loads(site.fake.bodies[i])["name"]
        for i in site.fake.faulted
        if site.fake.calls[i][0] == "POST" and site.fake.calls[i][1].startswith("/api/apps/")
    )


@pytest.mark.parametrize("lists", [True, False], ids=["with-job-list", "without-job-list"])
def test_a_server_dropping_every_submit_ends_each_variation_lost_not_in_a_loop(
    site, tmp_path, lists
):
    site.jobs.list_absent = not lists  # looked up by name, or resubmitted at once
    site.fake.fail("POST", APP_POST, 0, times=GUARD)  # the connection closes, no answer
    site.fake.fail("POST", APP_POST, 400, times=1)
    result = sweep_cli(site, tmp_path, [1, 2, 3])
    assert result.returncode == 1, result.stderr
    assert "3 job(s) did not end DONE" in result.stderr
    assert "Traceback" not in result.stderr
    assert "check the URL" not in result.stderr  # the server is there; its answer is not
    # Each variation was sent exactly LOST_ANSWERS times, always under one name.
    sent = dropped_names(site)
    assert len(sent) == 3 and set(sent.values()) == {LOST_ANSWERS}, sent
    assert site.fake.count("POST", APP_POST) == 3 * LOST_ANSWERS
    assert site.jobs.submissions == []
    directory = sweep_dir(tmp_path)
    summary = json.loads((directory / "summary.json").read_text())
    assert set(sent) == {f"sweep-{summary['sweep']}-{i}-0" for i in range(3)}
    assert summary["totals"]["outcomes"] == {"LOST": 3}
    for i, row in enumerate(summary["jobs"]):
        name = f"sweep-{summary['sweep']}-{i}-0"
        assert (row["state"], row["job"], row["attempts"]) == ("LOST", "", 1)
        assert row["last_status"] == (
            f"submit answer lost {LOST_ANSWERS} times; the job may exist: "
            f"invoke job-status {name} / invoke cancel-job {name}"
        )
        assert row["last_status"] in result.stderr  # said as it happened, too
    assert "LOST" in (directory / "report.html").read_text()
    # The sweep is over: resuming it sends nothing more.
    again = site.everbake(
        "sweep", "--max-requests-per-second", "100", "--resume", str(directory), cwd=tmp_path
    )
    assert again.returncode == 1 and site.fake.count("POST", APP_POST) == 3 * LOST_ANSWERS


def test_a_lost_answer_or_two_is_ridden_out(site, tmp_path):
    site.fake.fail("POST", APP_POST, 0, times=LOST_ANSWERS - 1)
    result = sweep_cli(site, tmp_path, [1])
    assert result.returncode == 0, result.stderr
    [row] = json.loads((sweep_dir(tmp_path) / "summary.json").read_text())["jobs"]
    assert row["state"] == "DONE"
    assert f"submitting it again ({LOST_ANSWERS - 1} of {LOST_ANSWERS} lost answers" in (
        result.stderr
    )
    assert len(site.jobs.submissions) == 1


def test_a_dropped_upload_is_sent_again_not_looked_up_as_a_lost_submission(site, tmp_path, capsys):
    from everbake.everest import sweep
    from everbake.everest.client import DEFAULT_RETRIES
    from everbake.everest.liveview import SweepView

    # The client tries an upload 1 + DEFAULT_RETRIES times; the sweep then sends it
    # again, LOST_ANSWERS times over: an upload is no submission, nothing to look up.
    drops = (1 + DEFAULT_RETRIES) * LOST_ANSWERS
    site.fake.fail("POST", r"/api/files/temp", 0, times=drops)
    state = sweep.start(APP, grid(tmp_path, [1]), tmp_path / "runs", 1, 0)
    outcome = sweep.run(site.api(backoff=0.001), state, SweepView(tty=False), rate=100)
    assert [row["state"] for row in outcome.table] == ["DONE"]
    err = capsys.readouterr().err
    assert "may exist" not in err and "answer was lost" not in err
    assert site.fake.count("POST", r"/api/files/temp") == drops + 1
    assert site.fake.count("POST", APP_POST) == len(site.jobs.submissions) == 1


def other_jobs(site: Site, n: int) -> None:
    """Jobs of other sweeps and users already on the server: a list this long is
    asked for at most every n / 1000 s (sweep.LIST_DOCS_PER_SECOND)."""
    app = site.fake.apps[site.app_id]
    with site.jobs.lock:
        for k in range(n):
            job_id = secrets.token_hex(12)
            site.jobs.jobs[job_id] = fj.FakeJob(
                job_id, f"older-{k}", app, {}, fj.done(), time.monotonic() - 60
            )


def test_the_give_up_timer_counts_submission_failures_not_other_calls_that_succeed(site, tmp_path):
    """x=1 runs and is polled fine while every submission of x=2 loses its answer:
    the polls that succeed in between must not restart the submissions' timer."""
    other_jobs(site, 1000)  # a lookup by name once a second
    dropped: list[str] = []

    def drop_x2(call):
        body = call.json()
        if site.jobs.params(body["inputs"])["x"] != 2:
            return site.jobs._submit(call)
        if len(dropped) >= GUARD:
            return error(400, "guard")
        dropped.append(body["name"])
        raise ConnectionAbortedError  # no answer, no job

    site.fake.route("POST", r"/api/apps/(?P<app>[^/]+/[^/]+)", drop_x2)
    site.jobs.plan = lambda inputs, n: fj.Script(running_steps=60)  # about 2 s of polls
    result = sweep_cli(site, tmp_path, [1, 2], env={"EVERBAKE_WATCH_GIVE_UP_SECONDS": "0.25"})
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert ", submitting: the server stayed unreachable" in last, result.stderr
    assert "resume with --resume" in last
    # x=2's lost answers came a second apart (one lookup each), past the 0.25 s: the
    # timer ended the sweep before they ran out, though x=1's polls worked between.
    assert 2 <= len(dropped) <= LOST_ANSWERS
    assert "submit answer lost" not in result.stderr
    assert len(site.jobs.submissions) == 1
    assert site.fake.count("GET", r"/api/jobs/[0-9a-f]{24}") >= 1  # a poll that worked
