"""A sweep SIGKILLed anywhere (while submitting, polling, downloading or writing the
summary) resumes without losing a job or submitting one twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from tests.fakes import everest_jobs as fj
from tests.fakes.everest import Call, Reply
from tests.jobs.conftest import APP, REPO, Site

N = 16
PREEMPTED_ONCE = {3, 8, 13}
RATE = ("--max-requests-per-second", "60")


def setup(site: Site, tmp_path: Path) -> Path:
    seen: set[int] = set()

    def plan(inputs: dict, n: int) -> fj.Script:
        x = inputs["params"]["x"]
        if x in PREEMPTED_ONCE and x not in seen:
            seen.add(x)
            return fj.preempted()
        return fj.done(objective=x * 10)

    site.jobs.plan = plan
    site.jobs.step = 0.04
    path = tmp_path / "grid.json"
    xs = list(range(N))
    path.write_text(json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": xs}}}))
    return path


def directory(tmp_path: Path) -> Path:
    [found] = (tmp_path / "runs").glob("sweep-*")
    return found


def start_or_resume(site: Site, tmp_path: Path, grid: Path) -> subprocess.Popen:
    runs = tmp_path / "runs"
    if runs.is_dir() and any(runs.glob("sweep-*/sweep.db")):
        return site.spawn("sweep", *RATE, "--resume", str(directory(tmp_path)), cwd=tmp_path)
    return site.spawn("sweep", *RATE, "--app", APP, "--grid", str(grid), "--max-parallel", "5",
                      cwd=tmp_path)  # fmt: skip


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def finish(site: Site, tmp_path: Path, grid: Path) -> subprocess.CompletedProcess:
    result = site.everbake("sweep", *RATE, "--resume", str(directory(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result


def check_nothing_lost_or_twice(site: Site, tmp_path: Path) -> None:
    names = [b["name"] for b in site.jobs.submissions]
    assert len(names) == len(set(names)), "a job name was submitted twice"
    per_x = Counter(site.jobs.params(b["inputs"])["x"] for b in site.jobs.submissions)
    assert per_x == {x: 2 if x in PREEMPTED_ONCE else 1 for x in range(N)}
    where = directory(tmp_path)
    table = json.loads((where / "summary.json").read_text())["jobs"]
    assert [r["state"] for r in table] == ["DONE"] * N
    assert [r["last_status"] for r in table] == [f"optimal: objective {x * 10}" for x in range(N)]
    assert sum(r["resubmissions"] for r in table) == len(PREEMPTED_ONCE)
    for row in table:
        assert (where / row["job"] / "results.zip").is_file()
        assert (where / row["job"] / "stats.json").is_file()
    assert (where / "report.html").is_file()
    assert not list(where.glob(".*.tmp")) and not list(where.rglob("*.part"))


def test_killed_at_random_moments_it_resumes_without_losing_or_duplicating(site, tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill moments from random seed {seed}")
    grid = setup(site, tmp_path)
    kills = 0
    for _ in range(8):
        proc = start_or_resume(site, tmp_path, grid)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is not None:
            proc.communicate()
            break  # it finished first
        kill(proc)
        kills += 1
    assert kills >= 2, "the sweep outran the kills: nothing was tested"
    finish(site, tmp_path, grid)
    check_nothing_lost_or_twice(site, tmp_path)


def block(site: Site, method: str, pattern: str, original, nth: int, create_first: bool = False):
    """Hold the ``nth`` matching request unanswered (after doing it, when
    ``create_first``) until the test lets go; returns (reached, release)."""
    reached, release = threading.Event(), threading.Event()
    count = [0]

    def held(call: Call) -> Reply:
        count[0] += 1
        if count[0] != nth:
            return original(call)
        reply = original(call) if create_first else None
        reached.set()
        release.wait(30)
        raise ConnectionAbortedError  # the client is dead by now anyway
        return reply  # pragma: no cover

    site.fake.route(method, pattern, held)
    return reached, release


def kill_when(site: Site, tmp_path: Path, grid: Path, reached: threading.Event,
              release: threading.Event) -> None:  # fmt: skip
    proc = start_or_resume(site, tmp_path, grid)
    try:
        assert reached.wait(60), "the sweep never got there"
        kill(proc)
    finally:
        release.set()
        proc.kill()


def test_killed_during_a_submission_whose_job_was_made_it_adopts_the_job(site, tmp_path):
    grid = setup(site, tmp_path)
    reached, release = block(
        site, "POST", r"/api/apps/(?P<app>[^/]+/[^/]+)", site.jobs._submit, 4, create_first=True
    )
    kill_when(site, tmp_path, grid, reached, release)
    assert len(site.jobs.submissions) == 4  # the fourth exists; its answer never came
    finish(site, tmp_path, grid)
    check_nothing_lost_or_twice(site, tmp_path)


def test_killed_during_a_poll_and_during_a_download_it_resumes(site, tmp_path):
    grid = setup(site, tmp_path)
    reached, release = block(site, "GET", r"/api/jobs/(?P<job>[0-9a-f]{24})", site.jobs._get, 2)
    kill_when(site, tmp_path, grid, reached, release)
    reached, release = block(site, "GET", r"/api/files/(?P<rest>.+)", site.fake._get_file, 9)
    kill_when(site, tmp_path, grid, reached, release)
    finish(site, tmp_path, grid)
    check_nothing_lost_or_twice(site, tmp_path)


KILL_IN_SUMMARY = """
import os, signal, sys
from pathlib import Path
from everbake.everest import summary
from everbake.everest.sweepstate import load_state

def progress(n):
    if n == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)

summary.write(load_state(Path(sys.argv[1])), progress)
"""


def test_killed_while_writing_the_summary_it_leaves_the_last_good_one(site, tmp_path):
    grid = setup(site, tmp_path)
    result = site.everbake("sweep", *RATE, "--app", APP, "--grid", str(grid), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    where = directory(tmp_path)
    before = (where / "summary.csv").read_text()
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_SUMMARY, str(where), "7"],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    assert (where / "summary.csv").read_text() == before  # never half a summary
    finish(site, tmp_path, grid)  # a finished sweep resumed: writes them again
    assert (where / "summary.csv").read_text() == before
    check_nothing_lost_or_twice(site, tmp_path)
