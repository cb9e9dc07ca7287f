"""Preemption reaches every process of the task at once, each with the rest of
the grace period; SIGTERM while the input unpacks stops the unpacking; with the
agent down as well as up the task ends with a preempted status."""

from __future__ import annotations

import gzip
import json
import signal
import tarfile
import time
import zipfile

import pytest

from tests.fakes.agent import FaultyAgent, free_port
from tests.runtime.cli_env import clean_env
from tests.runtime.tasks import make_model, make_task, start_task, status_text, wait_for_file

# The launcher starts a solver in a session of its own and exits on SIGTERM at
# once; the solver needs 2 s after SIGTERM to write its checkpoint.
SOLVER = """
import signal, sys, time
def stop(signum, frame):
    open("got-sigterm", "w").write(str(time.monotonic()))
    time.sleep(2.0)
    open("checkpoint.txt", "w").write("iteration 7")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open("solver.ready", "w").close()
while True:
    time.sleep(0.05)
"""
LAUNCHER = f"""
import signal, subprocess, sys, time
open("solver.py", "w").write({SOLVER!r})
subprocess.Popen([sys.executable, "solver.py"], start_new_session=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("launched", flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_solver_in_its_own_session_gets_sigterm_and_the_rest_of_the_grace(tmp_path):
    model = make_model(tmp_path, LAUNCHER, 'results = ["checkpoint.txt"]\n')
    task = make_task(tmp_path)
    proc = start_task(task, model, "--grace", "15")
    try:
        wait_for_file(task / "work" / "solver.ready")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (task / "work" / "got-sigterm").exists(), err.decode()  # not only the group
    with zipfile.ZipFile(task / "results.zip") as zf:
        assert zf.read("checkpoint.txt") == b"iteration 7"  # it had its 2 s
    status = status_text(task)
    assert status.startswith("preempted: SIGTERM after ")
    assert "killed" not in status


def big_input(task, megabytes: int) -> None:
    """A data.tar.gz that unpacks to ``megabytes`` of zeros (small to store)."""
    info = tarfile.TarInfo("zeros.bin")
    info.size = megabytes << 20

    class Zeros:
        left = info.size

        def read(self, n):
            n = min(n, self.left)
            self.left -= n
            return bytes(n)

    with (
        gzip.open(task / "data.tar.gz", "wb", compresslevel=1) as raw,
        tarfile.open(fileobj=raw, mode="w") as tf,
    ):
        tf.addfile(info, Zeros())  # type: ignore[arg-type]


def test_sigterm_while_the_input_unpacks_stops_it_with_a_preempted_status(tmp_path):
    model = make_model(tmp_path, "open('model-ran', 'w').close()\n")
    task = make_task(tmp_path)
    big_input(task, 1500)
    with FaultyAgent() as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-1")
        proc = start_task(task, model, "--max-input-bytes", str(4 << 30), env=env)
        try:
            work = task / "work"
            wait_for_file(work)
            deadline = time.monotonic() + 30
            while not any(p.name.endswith(".part") for p in work.iterdir()):
                assert time.monotonic() < deadline, "unpacking never started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert agent.wait_for(lambda: agent.statuses, 10)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    expected = "preempted: SIGTERM while unpacking the input; the model never started"
    assert status_text(task) == expected
    assert agent.statuses[-1] == expected
    assert not (task / "work" / "model-ran").exists()
    assert not (task / "work" / "input").exists()
    assert [p.name for p in task.rglob("*") if ".part" in p.name] == []
    assert b"Traceback" not in err


TRAPPING = """
import signal, sys, time
def stop(*a):
    open("partial.json", "w").write('{"stopped": true}')
    print("##status stopped cleanly", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("agent_up", [True, False], ids=["agent-up", "agent-down"])
def test_preemption_ends_with_a_status_whether_the_agent_is_up_or_not(tmp_path, agent_up):
    model = make_model(tmp_path, TRAPPING, 'results = ["partial.json"]\n')
    task = make_task(tmp_path)
    agent = FaultyAgent().start() if agent_up else None
    port = agent.port if agent is not None else free_port()
    env = clean_env(EVEREST_AGENT_PORT=str(port), EVEREST_AGENT_TASK_ID="t-1")
    try:
        proc = start_task(task, model, env=env)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        status = status_text(task)
        assert status.startswith("preempted: SIGTERM after ")
        assert status.endswith("partial results collected (last status: stopped cleanly)")
        if agent is not None:
            assert agent.wait_for(lambda: agent.statuses and agent.statuses[-1] == status, 10)
    finally:
        if agent is not None:
            agent.stop()
    with zipfile.ZipFile(task / "results.zip") as zf:
        assert json.loads(zf.read("partial.json")) == {"stopped": True}
