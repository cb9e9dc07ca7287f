"""Everything a task starts ends with it.

The runner makes itself a child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER),
so a process the model detaches (setsid, double fork) is re-parented to the
runner rather than to init: it stays a descendant the runner can find, end and
reap, and its CPU time reaches the runner's RUSAGE_CHILDREN when it is reaped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from .stats import scan

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def become_subreaper() -> bool:
    """True when orphans of our descendants now come back to this process."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False  # not Linux, or no prctl: background processes may escape


def descendants(root: int, proc: str = "/proc") -> list[int]:
    """Live (non-zombie) processes below ``root``, parents before children."""
    children: dict[int, list[int]] = {}
    for stat in scan(proc).values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return [pid for pid in found if not _zombie(pid, proc)]


def _zombie(pid: int, proc: str) -> bool:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def end_tree(root: int, grace: float = 1.0, poll: float = 0.05, already=()) -> int:
    """SIGTERM every descendant of ``root`` (but those in ``already``, which had
    it), SIGKILL what is left after ``grace`` seconds; returns how many were
    found. Orphans re-parented meanwhile are found on the next pass."""
    ended: set[int] = set(already)
    found: set[int] = set()
    deadline = time.monotonic() + grace
    sig = signal.SIGTERM
    while True:
        pids = descendants(root)
        if not pids:
            return len(found)
        found.update(pids)
        fresh = [p for p in pids if p not in ended]
        ended.update(pids)
        if fresh:
            signal_all(fresh, sig)
        if time.monotonic() >= deadline:
            if sig == signal.SIGKILL:
                signal_all(pids, sig)
                time.sleep(poll)
                if time.monotonic() >= deadline + min(grace, 1.0):
                    return len(found)  # unkillable (D state): do not hang the task
                continue
            sig = signal.SIGKILL
            signal_all(pids, sig)
        time.sleep(poll)


class Reaper(threading.Thread):
    """Reaps every child of this process (the model and the orphans that come
    back to us) in one blocking wait; ``exited`` is set when ``pid`` has ended,
    with ``returncode`` as subprocess gives it (-N when killed by signal N)."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="everest-reap", daemon=True)
        self.pid = pid
        self.returncode: int | None = None
        self.exited = threading.Event()
        self.idle = threading.Event()  # no children left at all

    def run(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == self.pid:
                if os.WIFSIGNALED(status):
                    self.returncode = -os.WTERMSIG(status)
                else:
                    self.returncode = os.WEXITSTATUS(status)
                self.exited.set()
        self.exited.set()  # the model was reaped elsewhere: never hang the runner
        self.idle.set()
