"""Sweeps against the Everest stand-in: 12 variations, 3 preemptions, kill and resume."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import textwrap
import time
from collections import Counter
from pathlib import Path

from tests.fakes import everest_jobs as fj
from tests.jobs.conftest import APP, Site

GRID = """\
[base]
params = { integer = true }
data = "data.tar.gz"

[product]
version = ["v1", "v2", "v3"]
[product.params]
freight = [70, 80, 90, 100]
"""
PREEMPTED_ONCE = {("v1", 80), ("v2", 100), ("v3", 70)}


def grid_file(tmp_path: Path, data_archive: Path) -> Path:
    assert data_archive.parent == tmp_path
    path = tmp_path / "grid.toml"
    path.write_text(textwrap.dedent(GRID))
    return path


def preempt_some_once(site: Site) -> None:
    seen: set[tuple[str, int]] = set()

    def plan(inputs: dict, n: int) -> fj.Script:
        key = (inputs["version"], inputs["params"]["freight"])
        if key in PREEMPTED_ONCE and key not in seen:
            seen.add(key)
            return fj.preempted()
        return fj.done(objective=key[1] * 10 + int(key[0][1:]))

    site.jobs.plan = plan


def sweep_dir(cwd: Path) -> Path:
    [found] = (cwd / "runs").glob("sweep-*")
    return found


def db_query(directory: Path, sql: str) -> list[tuple]:
    """Read the sweep's state as another process sees it (the sweep may be running)."""
    conn = sqlite3.connect(f"file:{directory / 'sweep.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def sweep_over_x(site: Site, tmp_path: Path, xs: list[int], retries: int):
    """`everbake sweep` of the fake app over params.x = xs, --retries as given."""
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": xs}}}))
    return site.everbake(
        "sweep",
        "--max-requests-per-second",
        "100",
        "--app",
        APP,
        "--grid",
        str(grid),
        "--retries",
        str(retries),
        cwd=tmp_path,
    )


def finished_count(cwd: Path) -> int:
    try:
        directory = sweep_dir(cwd)
        return db_query(directory, "SELECT count(*) FROM variations WHERE status = 'final'")[0][0]
    except (ValueError, sqlite3.Error):
        return 0  # not created yet


def check_finished_sweep(site: Site, directory: Path) -> list[dict]:
    table = json.loads((directory / "summary.json").read_text())["jobs"]
    assert len(table) == 12
    assert {row["state"] for row in table} == {"DONE"}
    assert sum(row["resubmissions"] for row in table) == 3
    for row in table:
        version = row["version"]
        freight = int(row["variation"].split("freight=")[1].split()[0])
        assert row["last_status"] == f"optimal: objective {freight * 10 + int(version[1:])}"
        assert row["resubmissions"] == (1 if (version, freight) in PREEMPTED_ONCE else 0)
        assert row["elapsed"] > 0
        assert (directory / row["job"] / "results.zip").is_file()
    with open(directory / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == [r["job"] for r in table]
    assert rows[0].keys() >= {"variation", "version", "state", "last_status", "elapsed"}
    # Every variation was submitted once, plus once more per preemption: 15 jobs.
    per_variation = Counter(
        (b["inputs"]["version"], site.jobs.params(b["inputs"])["freight"])
        for b in site.jobs.submissions
    )
    assert sum(per_variation.values()) == 15
    assert {k for k, n in per_variation.items() if n == 2} == PREEMPTED_ONCE
    assert all(site.jobs.params(b["inputs"])["integer"] is True for b in site.jobs.submissions)
    return table


def test_sweep_of_12_with_3_preemptions_ends_all_done(site, tmp_path, data_archive):
    preempt_some_once(site)
    grid = grid_file(tmp_path, data_archive)
    result = site.everbake(
        "sweep", "--max-requests-per-second", "100", "--app", APP, "--grid", str(grid),
        "--max-parallel", "5", "--retries", "2", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    directory = sweep_dir(tmp_path)
    check_finished_sweep(site, directory)
    assert result.stderr.count("was preempted; resubmitting (1 of 2)") == 3
    # One data upload for all, one params.json per distinct parameters (4 freights),
    # never one per attempt.
    assert site.fake.count("POST", "/api/files/temp") == 1 + 4
    # The summary table is printed too, one line per variation under a header.
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["variation", "version", "state"] and len(lines) == 13
    assert site.token not in result.stdout + result.stderr
    assert site.token.encode() not in (directory / "sweep.db").read_bytes()


def test_sweep_killed_midway_resumes_without_resubmitting_finished_jobs(
    site, tmp_path, data_archive
):
    preempt_some_once(site)
    site.jobs.step = 0.06
    grid = grid_file(tmp_path, data_archive)
    proc = site.spawn(
        "sweep",
        "--max-requests-per-second",
        "100",
        "--app",
        APP,
        "--grid",
        str(grid),
        "--max-parallel",
        "2",
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        finished = 0
        while finished < 4:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.05)
            finished = finished_count(tmp_path)
        proc.send_signal(signal.SIGKILL)  # no chance to tidy up
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    directory = sweep_dir(tmp_path)
    statuses = db_query(directory, "SELECT status FROM variations")
    assert {"final"} < {s for (s,) in statuses}  # some finished, not all
    done_before = {
        job
        for (job,) in db_query(
            directory,
            "SELECT a.job_id FROM attempts a JOIN variations v ON v.idx = a.variation "
            "AND a.n = v.attempts - 1 WHERE v.status = 'final'",
        )
    }
    submitted_before = len(site.jobs.submissions)

    result = site.everbake(
        "sweep",
        "--max-requests-per-second",
        "100",
        "--resume",
        str(directory.relative_to(tmp_path)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "resuming, " in result.stderr
    table = check_finished_sweep(site, directory)
    assert done_before <= {row["job"] for row in table}  # finished jobs kept, not rerun
    assert len(site.jobs.submissions) > submitted_before  # the rest was submitted now


def test_a_variation_preempted_more_often_than_retries_ends_failed(site, tmp_path):
    site.jobs.plan = lambda inputs, n: (
        fj.preempted() if inputs["params"]["x"] == 2 else fj.done(objective=inputs["params"]["x"])
    )
    result = sweep_over_x(site, tmp_path, [1, 2], retries=1)
    assert result.returncode == 1
    assert "did not end DONE" in result.stderr
    table = json.loads((sweep_dir(tmp_path) / "summary.json").read_text())["jobs"]
    assert [(r["state"], r["resubmissions"]) for r in table] == [("DONE", 0), ("FAILED", 1)]
    assert table[1]["last_status"].startswith("preempted: SIGTERM")
    assert len(site.jobs.submissions) == 3


def test_a_bad_grid_fails_before_anything_is_submitted(site, tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('[base]\nversion = "v1"\ndata = "missing.zip"\n[product.params]\nx = [1]\n')
    result = site.everbake(
        "sweep", "--max-requests-per-second", "100", "--app", APP, "--grid", str(grid), cwd=tmp_path
    )
    assert result.returncode == 1
    assert "missing.zip: no such file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert site.jobs.submissions == [] and not (tmp_path / "runs").exists()


def small_sweep(site: Site, tmp_path: Path):
    from everbake.everest import sweep

    grid = tmp_path / "grid.json"
    grid.write_text(
        json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": [1, 2, 3]}}})
    )
    api = site.api(backoff=0.001)
    return sweep, api, sweep.start(APP, grid, tmp_path / "runs", 3, 0)


def test_a_submission_whose_answer_was_lost_is_found_by_name_not_sent_twice(site, tmp_path):
    from everbake.everest.liveview import SweepView

    lost = []

    def submit_then_drop(call):
        reply = site.jobs._submit(call)
        if not lost:
            lost.append(reply.body["id"])
            raise ConnectionAbortedError  # the job exists; its answer never arrives
        return reply

    site.fake.route("POST", r"/api/apps/(?P<app>[^/]+/[^/]+)", submit_then_drop)
    sweep, api, state = small_sweep(site, tmp_path)
    outcome = sweep.run(api, state, SweepView(tty=False), rate=100)
    assert [row["state"] for row in outcome.table] == ["DONE"] * 3
    assert len(site.jobs.submissions) == 3  # the lost one was adopted, not resubmitted
    assert lost[0] in {row["job"] for row in outcome.table}
    assert site.fake.count("GET", "/api/jobs") >= 1


def test_a_submission_refused_with_503_is_sent_again(site, tmp_path):
    from everbake.everest.liveview import SweepView

    site.fake.fail("POST", r"/api/apps/.*", 503, times=1)
    sweep, api, state = small_sweep(site, tmp_path)
    outcome = sweep.run(api, state, SweepView(tty=False), rate=100)
    assert [row["state"] for row in outcome.table] == ["DONE"] * 3
    assert len(site.jobs.submissions) == 3
    assert site.fake.count("POST", r"/api/apps/.*") == 4


def test_ctrl_c_stops_the_sweep_with_130_and_says_how_to_resume(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.never_ends()
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": [1, 2]}}}))
    proc = site.spawn(
        "sweep", "--max-requests-per-second", "100", "--app", APP, "--grid", str(grid), cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 30
        ids: list = []
        while len(ids) < 2 or not all(ids):  # both jobs submitted and saved
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
            try:
                ids = [j for (j,) in db_query(sweep_dir(tmp_path), "SELECT job_id FROM attempts")]
            except (ValueError, sqlite3.Error):
                continue
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    directory = sweep_dir(tmp_path)
    assert f"Resume with: invoke sweep --resume {directory.relative_to(tmp_path)}" in err
    assert all(j for (j,) in db_query(directory, "SELECT job_id FROM attempts WHERE n = 0"))


def test_a_submission_refused_with_400_stops_the_sweep_at_once(site, tmp_path):
    import pytest

    from everbake.errors import EverbakeError
    from everbake.everest.liveview import SweepView

    site.fake.fail("POST", r"/api/apps/.*", 400, times=1)
    sweep, api, state = small_sweep(site, tmp_path)
    with pytest.raises(EverbakeError, match="answered 400"):
        sweep.run(api, state, SweepView(tty=False), rate=100)
    assert site.fake.count("POST", r"/api/apps/.*") == 1  # not sent again and again


def test_a_job_deleted_on_everest_ends_missing_while_the_rest_finish(site, tmp_path):
    import threading

    from everbake.everest.liveview import SweepView

    site.jobs.plan = lambda inputs, n: fj.never_ends() if inputs["params"]["x"] == 2 else fj.done()
    sweep, api, state = small_sweep(site, tmp_path)
    outcome = []
    runner = threading.Thread(
        target=lambda: outcome.append(sweep.run(api, state, SweepView(tty=False), rate=100))
    )
    runner.start()
    deadline = time.monotonic() + 30
    while len(site.jobs.jobs) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    doomed = next(j.id for j in site.jobs.jobs.values() if j.script.end == "never")
    with site.jobs.lock:
        del site.jobs.jobs[doomed]  # as DELETE /api/jobs/<id> would
    runner.join(timeout=30)
    assert not runner.is_alive()
    table = outcome[0].table
    assert [row["state"] for row in table] == ["DONE", "MISSING", "DONE"]
    assert table[1]["last_status"] == "the job is gone from Everest (404)"
    assert outcome[0].exit_code == 1


def test_the_retry_rule_preempted_and_vanished_again_a_model_failure_never(site, tmp_path):
    seen: set[int] = set()

    def plan(inputs: dict, n: int) -> fj.Script:
        x = inputs["params"]["x"]
        first = x not in seen
        seen.add(x)
        if x == 1 and first:
            return fj.preempted()
        if x == 2 and first:
            return fj.vanished()  # FAILED with no outputs: the VM went away
        if x == 3:
            return fj.failed()  # the model failed: its answer, never resubmitted
        return fj.done(objective=x)

    site.jobs.plan = plan
    result = sweep_over_x(site, tmp_path, [1, 2, 3], retries=2)
    assert result.returncode == 1
    assert "x=1: job " in result.stderr and "was preempted; resubmitting (1 of 2)" in result.stderr
    assert "FAILED with no outputs; resubmitting (1 of 2)" in result.stderr
    directory = sweep_dir(tmp_path)
    table = json.loads((directory / "summary.json").read_text())["jobs"]
    assert [(r["state"], r["resubmissions"], r["failure"]) for r in table] == [
        ("DONE", 1, ""),
        ("DONE", 1, ""),
        ("FAILED", 0, ""),
    ]
    assert len(site.jobs.submissions) == 5
    with open(directory / "summary.csv", newline="") as f:
        assert next(csv.reader(f))[7] == "failure"  # after the first seven, as before
    # Every job of the sweep has everbake's record, for resubmit.
    for row in table:
        record = json.loads((directory / row["job"] / "submission.json").read_text())
        assert record["job"] == row["job"] and record["app"] == APP


def test_a_variation_that_keeps_vanishing_ends_failed_with_the_reason(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.vanished()
    result = sweep_over_x(site, tmp_path, [1], retries=1)
    assert result.returncode == 1
    [row] = json.loads((sweep_dir(tmp_path) / "summary.json").read_text())["jobs"]
    assert (row["state"], row["resubmissions"], row["failure"]) == ("FAILED", 1, "no outputs")
