"""The task process runner of run-local and run-local --app: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from everbake.taskproc import run_in_group

REPO = Path(__file__).resolve().parents[2]


def test_stdout_and_stderr_go_to_their_files_the_log_and_the_screen(tmp_path: Path) -> None:
    shown: list[str] = []
    done = run_in_group(
        ["/bin/sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; exit 3"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path / "task.log",
        stdout_file=tmp_path / "stdout",
        stderr_file=tmp_path / "stderr",
        show=shown.append,
    )
    assert (done.exit_code, done.cancelled) == (3, False)
    assert (tmp_path / "stdout").read_text() == "out-1\nout-2\n"
    assert (tmp_path / "stderr").read_text() == "err-1\n"
    assert sorted((tmp_path / "task.log").read_text().splitlines()) == ["err-1", "out-1", "out-2"]
    assert "task ! err-1\n" in shown and "task | out-2\n" in shown


def test_one_stream_without_files(tmp_path: Path) -> None:
    shown: list[str] = []
    done = run_in_group(
        ["/bin/sh", "-c", "echo a; echo b >&2"], {}, tmp_path / "log", show=shown.append
    )
    assert done.exit_code == 0
    assert sorted(shown) == ["task | a\n", "task | b\n"]


def test_a_helper_left_holding_the_output_does_not_hold_the_run(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    script = f"sleep 300 & echo $! > {pid_file}; echo started"
    done = run_in_group(
        ["/bin/sh", "-c", script], {}, tmp_path / "log", drain_seconds=0.5, show=lambda _t: None
    )
    assert done.exit_code == 0
    helper = int(pid_file.read_text())
    # It was in the task's group: killed, not left running.
    for _ in range(50):
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(helper, signal.SIGKILL)
        raise AssertionError("the helper outlived the run")
    assert "started" in (tmp_path / "log").read_text()


CTRL_C = """
import sys
from pathlib import Path
from everbake.taskproc import run_in_group
task = "trap 'echo got TERM; exit 143' TERM; echo ready; while :; do sleep 0.1; done"
done = run_in_group(["/bin/sh", "-c", task], {{"PATH": "/usr/bin:/bin"}}, Path({log!r}))
print("result", done.exit_code, done.cancelled, flush=True)
"""


def test_ctrl_c_becomes_sigterm_to_the_group_and_waits_for_it(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CTRL_C.format(log=str(log)))],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "ready" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "result 143 True" in out, err
    assert "got TERM" in log.read_text()
    assert "cancelling: SIGTERM to the task's process group" in err
