"""The watcher keeps the cloud's account of a build VM; judge() decides from it."""

from __future__ import annotations

import threading
import time

from everbake.attempts import PREEMPTED, QUOTA_REGION, SUSPECT, Loss, judge
from everbake.watcher import GONE, Watcher


def scripted(statuses, fail_at=()):
    """An observe() answering ``statuses`` in turn (the last one forever)."""
    calls = {"n": 0}
    lock = threading.Lock()

    def observe():
        with lock:
            n = calls["n"]
            calls["n"] += 1
        if n in fail_at:
            raise RuntimeError("503 Service Unavailable\nrequest dump")
        return statuses[min(n, len(statuses) - 1)]

    return observe


def test_changes_of_status_are_recorded_with_their_time():
    with Watcher(
        scripted([None, "RUNNING", "RUNNING", "STOPPING", "STOPPED", None]), "vm", "z", 0.01
    ) as watch:
        time.sleep(0.3)
    account = watch.account
    assert [s.status for s in account.sightings] == ["RUNNING", "STOPPING", "STOPPED", GONE]
    assert account.polls >= 6 and not account.failures
    assert account.taken({"STOPPING", "STOPPED"}).startswith("vm STOPPING at ")
    assert account.taken({"PREEMPTED"}) is None
    assert account.cpu_seconds >= 0 and account.as_dict()["seen"][0]["status"] == "RUNNING"


def test_a_failed_poll_is_noted_and_the_watch_goes_on(capsys):
    with Watcher(
        scripted(["RUNNING", "RUNNING", "PREEMPTED"], fail_at={1, 2}), "vm", "z", 0.01
    ) as watch:
        time.sleep(0.2)
    account = watch.account
    assert account.failures[:2] == ["503 Service Unavailable", "503 Service Unavailable"]
    assert "PREEMPTED" in [s.status for s in account.sightings]
    # Said once, in one line, whatever the number of failures.
    assert capsys.readouterr().err.count("watch: could not ask about vm") == 1


def test_no_api_means_an_empty_account_that_says_why():
    with Watcher(None, "vm", "z", 0.01, why_not="gcp: no credentials") as watch:
        pass
    assert watch.account.sightings == [] and watch.account.failures == ["gcp: no credentials"]


def test_the_cloud_decides_whatever_the_console_said():
    ordinary = None  # "Script exited with non-zero exit status: 1": no console signal
    suspect = Loss(SUSPECT, "never answered SSH", "Timeout waiting for SSH.")
    quota = Loss(QUOTA_REGION, "quota", "Quota 'CPUS' exceeded.")
    assert judge(ordinary, None) is None
    taken = judge(ordinary, "vm PREEMPTED at 01:02:03 UTC")
    assert taken is not None and taken.kind == PREEMPTED and "PREEMPTED at" in taken.reason
    assert judge(suspect, None) is suspect  # unconfirmed: not retried blindly
    assert judge(suspect, "vm STOPPED at 01:02:03 UTC").kind == PREEMPTED
    assert judge(quota, None) is quota  # the cloud's own creation error stands
