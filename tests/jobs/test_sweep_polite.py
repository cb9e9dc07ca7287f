"""A sweep is polite to a shared Everest: one budget for every request, Retry-After
honoured, one job list serving many polls, and lists that are absent or partial."""

from __future__ import annotations

import json
from pathlib import Path

from everbake.everest import sweep
from everbake.everest.liveview import SweepView
from tests.jobs.conftest import APP, Site

# The budget holds where requests start (tests/jobs/test_budget.py, exactly, on a
# simulated clock). Here the fake sees them arrive: on a loaded 2-core machine a
# request can reach its handler up to ~0.1 s late, squeezing the gap to the next.
# Without the budget, the storm's retries come dozens a second.
JITTER = 0.15


def grid(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "grid.json"
    xs = list(range(1, n + 1))
    path.write_text(json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": xs}}}))
    return path


def run_sweep(site: Site, tmp_path: Path, n: int, rate: float, parallel: int = 4):
    state = sweep.start(APP, grid(tmp_path, n), tmp_path / "runs", parallel, 1)
    return sweep.run(site.api(backoff=0.001), state, SweepView(tty=False), rate=rate)


def most_in_a_second(stamps: list[float]) -> int:
    return max(sum(1 for u in stamps if t <= u < t + 1.0 - JITTER) for t in stamps)


def test_the_budget_holds_under_a_429_storm_and_retry_after_pauses_everything(site, tmp_path):
    site.jobs.step = 0.05
    storm = {"Retry-After": "1"}
    site.fake.fail("GET", r"/api/jobs.*", 429, times=12, headers=storm)
    site.fake.fail("POST", r"/api/files/temp", 429, times=2, headers=storm)
    site.fake.fail("GET", r"/api/files/jobs/.*", 429, times=4, headers=storm)
    outcome = run_sweep(site, tmp_path, 6, rate=4)
    assert [r["state"] for r in outcome.table] == ["DONE"] * 6
    assert len(site.jobs.submissions) == 6  # nothing submitted twice
    assert len(site.fake.faulted) == 18  # the whole storm was met
    stamps = site.fake.stamps
    assert most_in_a_second(stamps) <= 4
    for i in site.fake.faulted:  # after a 429 with Retry-After: 1, a second of quiet
        if i + 1 < len(stamps):
            assert stamps[i + 1] - stamps[i] >= 1.0 - JITTER, (i, site.fake.calls[i])


def test_one_job_list_serves_many_jobs(site, tmp_path):
    site.jobs.step = 0.05
    outcome = run_sweep(site, tmp_path, 12, rate=50, parallel=6)
    assert [r["state"] for r in outcome.table] == ["DONE"] * 12
    lists = site.fake.count("GET", r"/api/jobs")
    singles = site.fake.count("GET", r"/api/jobs/[0-9a-f]{24}")
    assert lists >= 1
    assert singles < 12  # most polls were served by lists, not one GET per job and cycle


def test_a_server_without_a_job_list_is_asked_once_then_each_job_is_polled(site, tmp_path):
    site.jobs.step = 0.05
    site.jobs.list_absent = True
    outcome = run_sweep(site, tmp_path, 6, rate=50)
    assert [r["state"] for r in outcome.table] == ["DONE"] * 6
    assert site.fake.count("GET", r"/api/jobs") == 1
    assert site.fake.count("GET", r"/api/jobs/[0-9a-f]{24}") >= 6


def test_jobs_a_partial_list_leaves_out_are_polled_one_by_one(site, tmp_path):
    site.jobs.step = 0.05
    site.jobs.list_limit = 2  # only the newest two jobs, as a paged list might
    outcome = run_sweep(site, tmp_path, 8, rate=50, parallel=4)
    assert [r["state"] for r in outcome.table] == ["DONE"] * 8
    assert len(site.jobs.submissions) == 8


def test_listed_documents_without_a_result_are_fetched_whole(site, tmp_path):
    site.jobs.step = 0.05
    site.jobs.list_without_result = True
    outcome = run_sweep(site, tmp_path, 6, rate=50, parallel=6)
    assert [r["state"] for r in outcome.table] == ["DONE"] * 6
    for row in outcome.table:
        assert (outcome.state.directory / row["job"] / "results.zip").is_file()
