"""run-job, job-status, fetch-job, cancel-job, resubmit against the Everest stand-in."""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

from everbake.everest import runjob
from everbake.everest.jobs import STATES
from everbake.everest.liveview import LiveView
from tests.fakes import everest_jobs as fj
from tests.jobs.conftest import APP, Site


def job_dirs(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "runs").iterdir()) if (cwd / "runs").is_dir() else []


def no_secret(site: Site, *texts: str, tree: Path | None = None) -> None:
    for text in texts:
        assert site.token not in text
    for path in tree.rglob("*") if tree else []:
        if path.is_file():
            assert site.token.encode() not in path.read_bytes(), path


def test_run_job_follows_the_job_and_downloads_its_outputs(site, tmp_path, data_archive):
    site.jobs.plan = lambda inputs, n: fj.done(objective=inputs["params"]["freight"] * 10)
    site.jobs.step = 0.2  # each state and status outlasts several polls, even on a busy machine
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1.2", "--params", '{"freight": 90}',
        "--data", str(data_archive), "--name", "first", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [job_dir] = job_dirs(tmp_path)
    job_id = job_dir.name
    # The live view (plain lines off a terminal): every state and status, in order.
    states = [line.split()[2] for line in result.stderr.splitlines() if line.startswith("job  ")]
    assert states == sorted(states, key=STATES.index) and states[-1] == "DONE"
    assert "RUNNING" in states
    # No live status is shown while it runs (no public client reads one): where to see it.
    assert "its live status is on the job's page in the Everest web UI" in result.stderr
    assert f"job {job_id}: DONE after" in result.stderr
    assert (job_dir / "status.txt").read_text() == "optimal: objective 900\n"
    with zipfile.ZipFile(job_dir / "results.zip") as zf:
        assert "solution.json" in zf.namelist()
    # stdout: the job id, then the path of every file downloaded
    out = result.stdout.split()
    assert out[0] == job_id
    outputs = ("results.zip", "status.txt", "stdout", "stderr", "version.txt", "stats.json")
    assert sorted(out[1:]) == sorted(str(Path("runs") / job_id / n) for n in outputs)
    # What was submitted: the uploaded archive's URI, the version and the parameters.
    [body] = site.jobs.submissions
    assert re.fullmatch(r"first-\d{8}-\d{6}-[0-9a-f]{6}", body["name"])  # unique, findable
    record = json.loads((job_dir / "submission.json").read_text())
    assert record["job"] == job_id and record["app"] == APP and record["inputs"] == body["inputs"]
    assert (
        json.loads((job_dir / "result.json").read_text())
        == site.jobs._doc(site.jobs.jobs[job_id])["result"]
    )
    assert body["inputs"]["version"] == "v1.2" and site.jobs.params(body["inputs"]) == {
        "freight": 90
    }
    assert body["inputs"]["debug"] == "false"  # bootstrap.sh's argument: "true" or "false"
    assert site.fake.files[body["inputs"]["data"]] == data_archive.read_bytes()
    assert "resources" not in body
    no_secret(site, result.stdout, result.stderr, tree=tmp_path / "runs")


def test_a_failed_job_exits_1_with_the_log_tail(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.failed()
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "last 20 lines of the job's log" in result.stderr
    assert "Traceback: ValueError: bad freight" in result.stderr
    assert "model line 21\n" in result.stderr and "model line 20\n" not in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr  # ours: one line
    [job_dir] = job_dirs(tmp_path)
    assert (job_dir / "status.txt").read_text().startswith("failed: exit 3")


def test_cancel_job_ends_a_running_job_and_run_job_exits_130(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.never_ends()
    watcher = site.spawn("run-job", "--app", APP, "--version", "v1", "--params", "{}", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not (site.jobs.jobs and site.jobs.state(next(iter(site.jobs.jobs))) == "RUNNING"):
            assert time.monotonic() < deadline and watcher.poll() is None
            time.sleep(0.02)
        job_id = next(iter(site.jobs.jobs))
        cancel = site.everbake("cancel-job", job_id, cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        assert f"job {job_id}: cancel requested" in cancel.stderr
        _, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 130, err
    assert f"job {job_id} ended CANCELLED" in err
    assert site.fake.count("POST", rf"/api/jobs/{job_id}/cancel") == 1


def test_no_wait_prints_the_id_and_job_status_and_fetch_job_find_it_later(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.never_ends()
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", "--no-wait", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    # Only everbake's record of the submission so far: no outputs yet.
    assert [p.name for p in (tmp_path / "runs" / job_id).iterdir()] == ["submission.json"]
    early = site.everbake("fetch-job", job_id, cwd=tmp_path)
    assert early.returncode == 1
    assert re.search(rf"error: job {job_id} is [A-Z]+: outputs exist once it ends", early.stderr)
    site.jobs.end_now(job_id, fj.done())
    status = site.everbake("job-status", job_id, cwd=tmp_path)
    assert status.returncode == 0
    assert f"job {job_id}: DONE" in status.stdout
    assert f"output status.txt: /api/files/jobs/{job_id}/status.txt" in status.stdout
    assert "info:" not in status.stdout  # info is read once FAILED or CANCELLED only
    # The unique name everbake gave the job works where its id does.
    name = site.jobs.jobs[job_id].name
    by_name = site.everbake("job-status", name, cwd=tmp_path)
    assert by_name.returncode == 0 and f"job {job_id}: DONE" in by_name.stdout
    fetched = site.everbake("fetch-job", job_id, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "runs" / job_id / "results.zip").is_file()
    # The configured runs dir (everbake.runs_dir) wins over runs/ of the current dir.
    elsewhere, work = tmp_path / "elsewhere", tmp_path / "work"
    work.mkdir()
    again = site.everbake(
        "fetch-job", job_id, cwd=work, more_env={"INVOKE_EVERBAKE_RUNS_DIR": str(elsewhere)}
    )
    assert again.returncode == 0, again.stderr
    assert not (work / "runs").exists()
    assert (elsewhere / job_id / "results.zip").is_file()
    assert str(elsewhere / job_id / "results.zip") in again.stdout.split()


def test_watch_rides_out_5xx_and_dropped_connections_without_losing_the_job(site, tmp_path):
    api = site.api(backoff=0.001)
    sub = runjob.jobs.Submission(app=APP, version="v1", name="w-1", params={})
    job_id = runjob.submit(api, sub, runjob.prepare(api, sub))
    # More failures in a row than the client retries (4), so the watch itself must cope.
    site.fake.fail("GET", rf"/api/jobs/{job_id}", 503, times=6)
    site.fake.fail("GET", rf"/api/jobs/{job_id}", 0, times=6)
    outcome = runjob.follow(api, job_id, tmp_path / "runs", LiveView(tty=False))
    assert outcome.state == "DONE" and outcome.job_id == job_id
    assert len(site.jobs.submissions) == 1  # never submitted again
    assert site.fake.count("GET", rf"/api/jobs/{job_id}") > 12
    assert (tmp_path / "runs" / job_id / "status.txt").is_file()


def test_resubmit_sends_the_original_inputs_with_only_the_overrides(site, tmp_path, data_archive):
    first = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", '{"freight": 90, "integer": true}',
        "--data", str(data_archive), "--resource", "ab" * 12, "--debug", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.split()[0]
    original = site.jobs.submissions[0]

    again = site.everbake("resubmit", job_id, "--version", "v2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = site.jobs.submissions[1]
    # The same inputs and resource (from everbake's record), under a new unique name.
    assert second == {
        **original,
        "name": second["name"],
        "inputs": {**original["inputs"], "version": "v2"},
    }
    assert second["resources"] == ["ab" * 12] and second["name"] != original["name"]
    second_id = again.stdout.split()[0]
    record = json.loads((tmp_path / "runs" / second_id / "submission.json").read_text())
    assert record["resubmission_of"] == job_id

    params = tmp_path / "p.json"
    params.write_text('{"freight": 1}')
    third = site.everbake(
        "resubmit", job_id, "--params", str(params), "--resource", "cd" * 12, cwd=tmp_path
    )
    assert third.returncode == 0, third.stderr
    body = site.jobs.submissions[2]
    assert body["inputs"].keys() == original["inputs"].keys()
    assert body["inputs"] == {**original["inputs"], "parameters": body["inputs"]["parameters"]}
    assert site.jobs.params(body["inputs"]) == {"freight": 1}
    assert site.jobs.params(original["inputs"]) == {"freight": 90, "integer": True}
    assert body["resources"] == ["cd" * 12] and body["name"].startswith("transport-")
    assert len(site.jobs.submissions) == 3
    # The data archive and the first parameters once, the new parameters once: the
    # resubmissions reuse the original's file URIs.
    assert site.fake.count("POST", "/api/files/temp") == 3


def test_user_errors_are_one_line_and_never_show_the_token(site, tmp_path):
    cases = [
        (("--params", "{oops"), "error: --params: the inline JSON is not valid JSON"),
        (("--params", "{}", "--data", "nope.zip"), "error: --data nope.zip: no such file"),
    ]
    for extra, message in cases:
        result = site.everbake("run-job", "--app", APP, "--version", "v1", *extra, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [message + result.stderr.split(message)[1]
                                                     .splitlines()[0]]  # fmt: skip
    missing = site.everbake(
        "run-job", "--app", "alice/nope", "--version", "v1", "--params", "{}", cwd=tmp_path
    )
    assert missing.returncode == 1
    assert "not found (404)" in missing.stderr and "Traceback" not in missing.stderr
    unknown = site.everbake("job-status", "ef" * 12, cwd=tmp_path)
    assert unknown.returncode == 1 and "not found (404)" in unknown.stderr
    assert json.dumps(site.token) not in missing.stderr + unknown.stderr


def test_a_preempted_job_says_so_and_how_to_run_it_again(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.preempted()
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", cwd=tmp_path
    )
    assert result.returncode == 1
    job_id = result.stdout.split()[0]
    assert f"job {job_id} ended FAILED (its VM was preempted: 'invoke resubmit {job_id}')" in (
        result.stderr
    )
    assert "preempted: SIGTERM after 0.1 s; partial results collected" in result.stderr
