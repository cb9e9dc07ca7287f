"""A full disk under the task directory (a small tmpfs; needs root): the output
still passes through, results come first, every later write is guarded, the
final status says what was lost, and nothing half-written is left behind."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from tests.fakes.agent import FaultyAgent
from tests.runtime.cli_env import clean_env
from tests.runtime.tasks import make_model, make_task, run_task, status_text, zip_members


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


FILL = """
def fill(name="filler"):
    try:
        with open(name, "wb") as f:
            while True:
                f.write(b"x" * 65536)
                f.flush()
    except OSError:
        pass
"""

# Fills the disk, then prints 2 MiB (more than any pipe buffer) while the log
# cannot be written, frees the disk again and writes its result.
LOG_FAILS = (
    FILL
    + """
import os, sys
from everest_runtime import status
fill()
for i in range(20000):
    print(f"line {i:05d} " + "y" * 90)
sys.stdout.flush()
os.remove("filler")
os.makedirs("out", exist_ok=True)
open("out/answer.txt", "w").write("42")
status.send("optimal: 42")
status.close()
"""
)


def test_a_full_disk_under_the_log_never_blocks_the_output(small_disk):
    model = make_model(small_disk, LOG_FAILS, 'results = ["out/*"]\n')
    task = make_task(small_disk)
    result = run_task(task, model, "--sample-interval", "0.2", timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    lines = [x for x in result.stdout.splitlines() if x.startswith(b"line ")]
    assert len(lines) == 20000  # every byte passed through, none stuck behind the log
    assert zip_members(task / "results.zip") == {"out/answer.txt": b"42"}
    status = status_text(task)
    assert status.startswith("optimal: 42"), status  # the model's last word first
    assert "disk full: stdout.log incomplete" in status


# Writes its result, reports, then fills the disk and exits leaving it full.
EXIT_FULL = (
    FILL
    + """
import os
from everest_runtime import status
os.makedirs("out", exist_ok=True)
open("out/answer.txt", "w").write("42" * 100)
status.send("optimal: 42")
status.close()
fill()
print("done")
"""
)


def test_a_full_disk_at_exit_still_ends_with_a_status_saying_what_was_lost(small_disk):
    model = make_model(small_disk, EXIT_FULL, 'results = ["out/*"]\n')
    task = make_task(small_disk, {"debug": True})
    with FaultyAgent() as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-1")
        result = run_task(task, model, env=env, timeout=120)
        # The session with the agent ended the protocol's way (we shut down, it closed).
        assert agent.wait_for(lambda: agent.connections and not agent._open, 10)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "Traceback" not in err
    status = status_text(task)  # written although the disk is full
    assert status.startswith("optimal: 42"), status
    assert "disk full: results.zip not written" in status
    assert agent.statuses[-1] == status  # the agent heard the same
    assert agent.bad == []
    assert (task / "stats.json").exists()  # the reserve made room for it
    leftovers = [p.name for p in task.rglob("*") if p.name.endswith(".part")]
    assert leftovers == []
    assert not (task / "results.zip").exists()


def test_a_full_disk_from_the_start_is_one_line_and_a_status(small_disk):
    model = make_model(small_disk, "print('never')\n")
    task = make_task(small_disk)
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb") as f:
        while True:
            f.write(b"x" * 65536)
    result = run_task(task, model)
    err = result.stderr.decode()
    assert result.returncode != 0 and "Traceback" not in err
    assert "No space left on device" in err
    assert [p.name for p in task.rglob("*") if p.name.endswith(".part")] == []
