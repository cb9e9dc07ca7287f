"""Jobs against what public clients show of real servers: both output URI shapes,
200 and 201 submits, older `app` documents, lost submit answers, vanished VMs."""

from __future__ import annotations

import json
from pathlib import Path

from everbake.everest import runjob
from everbake.everest.liveview import LiveView
from tests.fakes import everest_jobs as fj
from tests.jobs.conftest import APP, Site

OUTPUTS = ("results.zip", "status.txt", "stdout", "stderr", "version.txt", "stats.json")


def _no_token_anywhere(site: Site, text: str, tree: Path) -> None:
    assert site.token not in text
    for path in tree.rglob("*"):
        assert path.is_dir() or site.token.encode() not in path.read_bytes(), path


def test_an_older_server_200_app_documents_and_full_url_files(older_site, tmp_path, data_archive):
    site = older_site
    site.jobs.plan = lambda inputs, n: fj.done(objective=7)
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", '{"freight": 1}',
        "--data", str(data_archive), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[0]
    job_dir = tmp_path / "runs" / job_id
    assert sorted(p.name for p in job_dir.iterdir()) == sorted(
        [*OUTPUTS, "result.json", "submission.json"]
    )
    assert (job_dir / "status.txt").read_text() == "optimal: objective 7\n"
    # The uploads came back as full URLs and went into the inputs as they were.
    [body] = site.jobs.submissions
    assert body["inputs"]["data"].startswith(site.fake.url + "/api/files/temp/")
    result_doc = json.loads((job_dir / "result.json").read_text())
    assert result_doc["status"] == f"{site.fake.url}/api/files/jobs/{job_id}/status.txt"
    # Full URLs of the Everest host itself are fetched with the token.
    status_gets = [
        h for (m, p), h in zip(site.fake.calls, site.fake.headers_seen, strict=True)
        if m == "GET" and p.endswith("/status.txt")
    ]  # fmt: skip
    assert status_gets and all(h["authorization"] == f"Bearer {site.token}" for h in status_gets)
    # job-status shows the app from the older `app` field.
    shown = site.everbake("job-status", job_id, cwd=tmp_path)
    assert f"  app: {site.app_id}" in shown.stdout
    _no_token_anywhere(site, result.stdout + result.stderr, tmp_path / "runs")


def test_outputs_on_another_host_are_fetched_without_the_token(site, tmp_path):
    site.jobs.output_uris = "host"
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[0]
    assert (tmp_path / "runs" / job_id / "results.zip").is_file()
    host = site.jobs.file_host
    assert host is not None and len(host.headers_seen) == len(OUTPUTS)
    for headers in host.headers_seen:
        assert "authorization" not in headers and "cookie" not in headers
        assert site.token not in json.dumps(headers)
    assert not site.fake.count("GET", r"/api/files/.*")  # nothing asked of Everest for them


def test_resubmit_of_a_job_submitted_elsewhere_notes_the_unknown_resource(older_site, tmp_path):
    site = older_site
    first = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}",
        "--resource", "ab" * 12, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.split()[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no runs/ here: no everbake record of the job
    again = site.everbake("resubmit", job_id, "--version", "v2", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert f"job {job_id} has no everbake record" in again.stderr
    assert "its resource is unknown, so Everest chooses one; give --resource" in again.stderr
    second = site.jobs.submissions[1]
    assert "resources" not in second  # not guessed from the job document
    assert second["inputs"] == {**site.jobs.submissions[0]["inputs"], "version": "v2"}
    # The app came from the older documents' `app` field.
    assert site.fake.count("POST", rf"/api/apps/{site.app_id}") == 1


def _drop_first_answer(site: Site, create: bool) -> list[str]:
    """The first POST of a job is lost on its way back (created or not)."""
    lost: list[str] = []

    def handler(call):  # type: ignore[no-untyped-def]
        if not lost:
            lost.append("x")
            if create:
                reply = site.jobs._submit(call)
                lost[0] = reply.body["id"]
            raise ConnectionAbortedError
        return site.jobs._submit(call)

    site.fake.route("POST", r"/api/apps/(?P<app>[^/]+/[^/]+)", handler)
    return lost


def test_run_job_whose_answer_was_lost_finds_the_job_by_its_name(site, tmp_path):
    lost = _drop_first_answer(site, create=True)
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == lost[0]
    assert "the answer to the submission was lost" in result.stderr
    assert len(site.jobs.submissions) == 1  # never sent twice
    assert (tmp_path / "runs" / lost[0] / "submission.json").is_file()


def test_a_lost_answer_with_no_job_to_find_says_it_may_exist_and_how_to_look(site, tmp_path):
    _drop_first_answer(site, create=False)
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", "--name", "night",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert "the job may exist on Everest" in line
    name = line.split("submitting job '")[1].split("'")[0]
    assert name.startswith("night-")
    assert f"'invoke job-status {name}'" in line and f"'invoke cancel-job {name}'" in line
    assert "check the URL" not in result.stderr and "Traceback" not in result.stderr
    assert site.jobs.submissions == []  # and nothing was sent again


def test_a_job_failed_without_outputs_is_told_apart_from_a_preempted_one(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.vanished()
    result = site.everbake(
        "run-job", "--app", APP, "--version", "v1", "--params", "{}", cwd=tmp_path
    )
    assert result.returncode == 1
    job_id = result.stdout.split()[0]
    assert f"job {job_id} FAILED and delivered no outputs: its VM may have vanished" in (
        result.stderr
    )
    assert f"job {job_id} ended FAILED with no outputs (its VM may have vanished: " in (
        result.stderr
    )
    assert "preempted" not in result.stderr


def test_the_live_view_shows_no_status_while_running_and_info_at_the_end(site, tmp_path):
    site.jobs.plan = lambda inputs, n: fj.failed()
    api = site.api()
    sub = runjob.jobs.Submission(app=APP, version="v1", name="f-1", params={})
    job_id = runjob.submit(api, sub, runjob.prepare(api, sub))
    import io

    out = io.StringIO()
    outcome = runjob.follow(api, job_id, tmp_path / "runs", LiveView(out, tty=False))
    lines = out.getvalue().splitlines()
    running = [line for line in lines if "  RUNNING  " in line]
    assert running and all(line.split("  RUNNING  ")[1].count(" ") == 0 for line in running)
    assert outcome.state == "FAILED" and outcome.reason == ""  # the model failed: final
    assert outcome.last_status.startswith("failed: exit 3")  # status.txt, after info
