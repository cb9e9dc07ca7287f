"""Run one task's command the way run-local and run-local --app both need it.

- in a process group of its own, so a signal reaches the whole tree;
- Ctrl-C becomes SIGTERM to that group (what a preemption or a cancel sends), then
  a bounded wait for the runner to collect its outputs; a second Ctrl-C or the
  end of the grace period sends SIGKILL;
- stdout and stderr pumped as they come into the run's log, onto our stderr with
  a prefix, and (when asked) each into its own file, as the agent keeps them;
- every wait bounded: a helper that outlives the task and keeps a pipe open
  does not hold the run (its output is cut off after ``drain_seconds``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from everbake.ui import say

# The runner forwards SIGTERM to the model and still collects outputs; give it time.
CANCEL_GRACE_SECONDS = 30.0
# After the task ends, how long its output may still flow (from leftover helpers).
DRAIN_SECONDS = 5.0
OUT_PREFIX, ERR_PREFIX = "task | ", "task ! "


@dataclass(frozen=True)
class Finished:
    exit_code: int
    cancelled: bool  # Ctrl-C stopped it


class _Pump(threading.Thread):
    """Copy one pipe, line by line, to its destinations, under a shared lock."""

    def __init__(
        self,
        source: IO[bytes],
        sinks: Sequence[IO[bytes]],
        prefix: str,
        lock: threading.Lock,
        show: Callable[[str], None],
    ) -> None:
        super().__init__(daemon=True)
        self.source, self.sinks, self.prefix, self.lock, self.show = (
            source,
            sinks,
            prefix,
            lock,
            show,
        )
        self.stopped = False

    def run(self) -> None:
        for raw in self.source:
            with self.lock:
                if self.stopped:  # the run moved on: its files are closed
                    return
                for sink in self.sinks:  # flushed: the files grow as the task runs
                    sink.write(raw)
                    sink.flush()
                self.show(self.prefix + raw.decode("utf-8", "replace"))


def _show(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def run_in_group(
    argv: Sequence[str],
    env: dict[str, str],
    log: Path,
    *,
    stdout_file: Path | None = None,
    stderr_file: Path | None = None,
    grace_seconds: float = CANCEL_GRACE_SECONDS,
    drain_seconds: float = DRAIN_SECONDS,
    show: Callable[[str], None] = _show,
) -> Finished:
    """Run ``argv`` to its end (or to Ctrl-C and its grace period).

    Without ``stdout_file``/``stderr_file`` both streams go into ``log`` as one,
    prefixed ``task | ``; with them each also goes into its own file, stderr shown
    prefixed ``task ! ``.
    """
    split = stdout_file is not None or stderr_file is not None
    lock = threading.Lock()
    files: list[IO[bytes]] = []
    try:
        log_file = open(log, "ab")  # noqa: SIM115 - closed below, after the pumps
        files.append(log_file)
        out_sinks, err_sinks = [log_file], [log_file]
        for path, sinks in ((stdout_file, out_sinks), (stderr_file, err_sinks)):
            if path is not None:
                handle = open(path, "wb")  # noqa: SIM115 - as above
                files.append(handle)
                sinks.append(handle)
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if split else subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        pumps = [_Pump(proc.stdout, out_sinks, OUT_PREFIX, lock, show)]
        if split:
            assert proc.stderr is not None
            pumps.append(_Pump(proc.stderr, err_sinks, ERR_PREFIX, lock, show))
        for pump in pumps:
            pump.start()
        cancelled = False
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            say("cancelling: SIGTERM to the task's process group, collecting outputs")
            cancelled = True
            code = terminate_group(proc, grace_seconds)
        _drain(proc, pumps, lock, drain_seconds)
        return Finished(code, cancelled)
    finally:
        for opened in files:
            opened.close()


def _drain(
    proc: subprocess.Popen[bytes], pumps: list[_Pump], lock: threading.Lock, seconds: float
) -> None:
    """Let the pumps finish, for at most ``seconds``; a group member still holding a
    pipe after that is killed and its output dropped."""
    deadline = time.monotonic() + seconds
    for pump in pumps:
        pump.join(max(0.0, deadline - time.monotonic()))
    if any(pump.is_alive() for pump in pumps):
        say(f"the task ended but a process it left holds its output open: killing group {proc.pid}")
        _signal_group(proc.pid, signal.SIGKILL)
        for pump in pumps:
            pump.join(1.0)
    with lock:
        for pump in pumps:
            pump.stopped = True


def terminate_group(proc: subprocess.Popen[bytes], grace_seconds: float) -> int:
    """SIGTERM to ``proc``'s group, a wait of at most ``grace_seconds`` (a second
    Ctrl-C cuts it short), then SIGKILL. Returns the exit code."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            break  # a second Ctrl-C: stop waiting
    if proc.poll() is None:
        say("the task did not stop in time: killing it")
        _signal_group(proc.pid, signal.SIGKILL)
    return proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, sig)
