"""Jobs as data: parameters, resubmission inputs, preemption, backoff, sweep state."""

from __future__ import annotations

import signal

import pytest
from everest_runtime import runner

from everbake.everest import jobs
from everbake.everest.grid import Variation
from everbake.everest.sweepstate import load_state, new_state
from everbake.everest.watch import Backoff, Tracker


def test_params_inline_or_file(tmp_path):
    assert jobs.load_params('{"freight": 90}') == {"freight": 90}
    path = tmp_path / "params.json"
    path.write_text('{"integer": true}')
    assert jobs.load_params(str(path)) == {"integer": True}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"freight": }', "--params: the inline JSON is not valid JSON"),
        ("missing.json", "--params missing.json: neither a JSON object nor a readable file"),
        ("[1]", "--params [1]: neither a JSON object nor a readable file"),
    ],
)
def test_params_errors_are_one_line(value, message):
    with pytest.raises(jobs.JobError) as caught:
        jobs.load_params(value)
    assert message in str(caught.value)


def test_params_file_must_hold_an_object(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("[1, 2]")
    with pytest.raises(jobs.JobError, match="must hold a JSON object"):
        jobs.load_params(str(path))


def _final(sig: int | None, rc: int) -> str:
    """The runtime's own final status for a model stopped by ``sig`` (or exiting ``rc``)."""
    signals = runner._Signals()
    if sig is not None:
        signals.received = [sig]
        signals.first_at = 112.3
    return runner._final_status(rc, 100.0, 13.0, signals, False, "solving", 20)


def test_preemption_is_read_from_the_runtimes_own_final_status():
    assert jobs.is_preempted(["solving", _final(signal.SIGTERM, 143)])
    assert not jobs.is_preempted(["solving", _final(signal.SIGINT, 130)])  # a cancel
    assert not jobs.is_preempted(["solving", _final(None, 3)])  # the model failed
    notice = "preemption notice: the cloud is reclaiming this VM; stopping soon"
    assert jobs.is_preempted([notice, "failed: killed by SIGKILL after 30.0 s"])


def test_tracker_counts_a_preempted_failure_only():
    t = Tracker("a" * 24)
    t.update({"state": "RUNNING", "info": "solving"})
    assert t.statuses == []  # info is read once FAILED or CANCELLED only (templet)
    t.update({"state": "FAILED", "info": "task failed"})
    assert t.last_status == "task failed" and not t.preempted
    t.note_final_status("preempted: SIGTERM after 1.0 s; partial results collected\n")
    assert t.preempted and t.last_status.startswith("preempted:")


def test_why_a_job_failed():
    preempted = ["preempted: SIGTERM after 1.0 s; partial results collected"]
    assert jobs.failure("FAILED", preempted, ["status.txt"]) == jobs.PREEMPTED
    assert jobs.failure("FAILED", ["failed: exit 3"], ["status.txt"]) == ""
    assert jobs.failure("FAILED", ["task failed"], []) == jobs.NO_OUTPUTS
    assert jobs.failure("DONE", [], []) == ""


def test_the_app_of_a_job_document_old_and_new():
    assert jobs.app_of({"appAlias": "alice/t", "appId": "a" * 24}) == "alice/t"
    assert jobs.app_of({"appAlias": None, "appId": "a" * 24}) == "a" * 24
    assert jobs.app_of({"app": "b" * 24}) == "b" * 24  # older servers


def test_job_names_are_unique_and_say_what_they_run():
    names = {jobs.job_name("alice/transport") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("transport-") for n in names)
    assert jobs.job_name("a" * 24, "night run").startswith("night-run-")


INPUTS = {
    "version": "v1",
    "parameters": "/api/files/temp/p/params.json",
    "debug": "false",
    "data": "/api/files/temp/x/data.tar.gz",
    "extra": "kept",
}


def test_resubmission_from_the_record_keeps_inputs_and_resource():
    record = {
        "job": "b" * 24,
        "app": "alice/transport",
        "name": "transport-20261208-010000-abcdef",
        "inputs": INPUTS,
        "resources": ["d" * 24],
    }
    same = jobs.resubmission(record, job_id="b" * 24, resource_known=True)
    body = same.body(None, None)
    assert body["inputs"] == INPUTS and body["resources"] == ["d" * 24]
    assert body["name"] != record["name"] and body["name"].startswith("transport-")
    assert same.resubmission_of == "b" * 24
    other = jobs.resubmission(
        record, job_id="b" * 24, resource_known=True, version="v2", resource="e" * 24
    )
    body = other.body(None, None)
    assert body["inputs"] == {**INPUTS, "version": "v2"}
    assert body["resources"] == ["e" * 24]
    assert other.app == "alice/transport"


def test_resubmission_from_a_job_document_never_guesses_the_resource():
    doc = {"id": "b" * 24, "name": "n", "app": "c" * 24, "inputs": INPUTS, "resources": ["x"]}
    sub = jobs.resubmission(doc, job_id="b" * 24, resource_known=False)
    assert sub.app == "c" * 24 and "resources" not in sub.body(None, None)


def test_resubmission_of_a_foreign_job_is_refused():
    with pytest.raises(jobs.JobError, match="no 'version'"):
        jobs.resubmission(
            {"id": "x", "inputs": {"n": 1}, "appId": "a"}, job_id="x", resource_known=False
        )


def test_backoff_stretches_while_quiet_and_snaps_back_on_change():
    b = Backoff(first=1.0, most=4.0)
    waits = [b.next(False) for _ in range(6)]
    assert waits[0] == pytest.approx(1.0, rel=0.11)
    assert waits[-1] == pytest.approx(4.0, rel=0.11)
    assert all(w <= 4.4 for w in waits)
    assert b.next(True) == pytest.approx(1.0, rel=0.11)


def test_sweep_state_round_trips_its_phases(tmp_path):
    variations = [Variation(i, f"x={i}", "v1", {"x": i}) for i in range(3)]
    grid = tmp_path / "grid.toml"
    grid.write_text("")
    state = new_state("alice/app", grid, variations, tmp_path / "runs", retries=2, parallel=2)
    first = state.begin_attempt(1)  # saved before its POST
    state.submitted(first, "f" * 24, "SUBMITTED", 100.0)
    state.seen(first, "RUNNING", "solving", 101.0)
    second = state.begin_attempt(2)
    state.add_upload("/data.zip", "/api/files/temp/1/data.zip")
    state.close()
    # Only the database and its WAL files: no temporary file left behind.
    assert {p.name for p in state.directory.iterdir()} <= {
        "sweep.db",
        "sweep.db-wal",
        "sweep.db-shm",
    }
    again = load_state(state.directory)
    assert again.sweep_id == state.sweep_id and again.uploads() == {
        "/data.zip": "/api/files/temp/1/data.zip"
    }
    opened = {a.variation: a for a in again.open_attempts()}
    assert opened[1].name == f"sweep-{state.sweep_id}-1-0" and opened[1].phase == "submitted"
    assert (opened[1].state, opened[1].last_live, opened[1].running_at) == (
        "RUNNING",
        "solving",
        101.0,
    )
    assert (
        opened[2].name == second.name and opened[2].phase == "naming" and opened[2].job_id is None
    )
    assert again.status_counts() == {"pending": 1, "active": 2}
    assert again.pending(-1, 10) == [0]


def test_resume_of_a_directory_without_state_says_what_to_give(tmp_path):
    with pytest.raises(jobs.JobError, match=r"no sweep\.db there; give a runs/sweep-<id>"):
        load_state(tmp_path)


def test_resume_of_a_first_format_sweep_says_how_to_finish_it(tmp_path):
    (tmp_path / "sweep.json").write_text('{"format": 1, "items": []}')
    with pytest.raises(jobs.JobError) as caught:
        load_state(tmp_path)
    message = str(caught.value)
    assert "sweep.json is the first sweep format" in message and "finish it with" in message
    assert "\n" not in message


def test_live_view_redraws_in_place_on_a_terminal_and_prints_changes_elsewhere():
    import io

    from everbake.everest.liveview import LiveView, Row

    t = Tracker("a" * 24)
    t.update({"state": "RUNNING"})
    term = io.StringIO()
    view = LiveView(term, tty=True)
    view.show([Row("x=1", t)], force=True)
    t.update({"state": "FAILED", "info": "task failed"})
    view.show([Row("x=1", t)], force=True)
    drawn = term.getvalue()
    assert drawn.count("\x1b[1F\x1b[J") == 1  # second frame replaces the first line
    assert drawn.rstrip().endswith("task failed")

    log = io.StringIO()
    plain = LiveView(log, tty=False)
    for _ in range(3):
        plain.show([Row("x=1", t)])  # unchanged: one line only
    assert "\x1b" not in log.getvalue() and len(log.getvalue().splitlines()) == 1


def test_live_view_on_a_short_terminal_shows_running_jobs_and_counts_the_rest(monkeypatch):
    import io

    from everbake.everest.liveview import LiveView, Row

    monkeypatch.setenv("LINES", "6")
    monkeypatch.setenv("COLUMNS", "80")
    rows = []
    for n in range(10):
        t = Tracker(f"{n:024x}")
        t.update({"state": "DONE" if n < 7 else "RUNNING"})
        rows.append(Row(f"x={n}", t))
    term = io.StringIO()
    LiveView(term, tty=True).show(rows, force=True)
    lines = term.getvalue().splitlines()
    assert len(lines) == 4
    assert [line.split()[0] for line in lines] == ["x=7", "x=8", "x=9", "..."]
    assert "7 more: 7 DONE" in lines[-1]


def test_output_file_names_never_leave_the_jobs_directory():
    base = "/api/files/jobs/" + "a" * 24
    doc = {
        "result": {
            "results": f"{base}/results.zip",
            "odd": f"{base}/..",
            "hidden": f"{base}/.bashrc",
            "encoded": f"{base}/a%2F..%2Fb.txt",
            "many": [f"{base}/x.csv", 3, None],
            "number": 42.0,
        }
    }
    assert jobs.output_files(doc) == [
        ("results.zip", f"{base}/results.zip"),
        ("odd", f"{base}/.."),
        ("hidden", f"{base}/.bashrc"),
        ("b.txt", f"{base}/a%2F..%2Fb.txt"),
        ("x.csv", f"{base}/x.csv"),
    ]
