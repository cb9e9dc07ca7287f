"""Watch a build VM while `packer build` runs, and keep the cloud's account of it.

Packer's console cannot be trusted to say that a VM was lost (a VM preempted
during boot shows only "Timeout waiting for SSH.", one preempted mid-script
"Script exited with non-zero exit status: 143"), and the Yandex builder deletes
its instance during cleanup before anyone can ask. So a thread asks the cloud
about the build instance by its unique name every ``interval`` seconds and
records each change of status with its time. The cost and the failures of the
watch never take the build down: a failed poll is noted and the watch goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from everbake.ui import say

GONE = "GONE"  # the cloud no longer knows the instance (after it was seen)
# What the poll returns: the cloud's word for the VM's state, or None when the
# cloud does not know the instance.
Observe = Callable[[], "str | None"]


@dataclass(frozen=True)
class Sighting:
    status: str  # the cloud's word (GCE: RUNNING, TERMINATED, PREEMPTED; Yandex: STOPPED...)
    at: float  # epoch seconds

    def when(self) -> str:
        return datetime.fromtimestamp(self.at, timezone.utc).strftime("%H:%M:%S UTC")


@dataclass
class Account:
    """What the cloud said about one build VM during one attempt."""

    instance: str
    zone: str
    sightings: list[Sighting] = field(default_factory=list)
    polls: int = 0
    failures: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the watch thread's own CPU time

    def see(self, status: str, at: float) -> None:
        if not self.sightings or self.sightings[-1].status != status:
            self.sightings.append(Sighting(status, at))

    def taken(self, lost: Collection[str]) -> str | None:
        """'<STATUS> at <time>' of the first sighting in ``lost``, None if none was."""
        for sighting in self.sightings:
            if sighting.status in lost:
                return f"{self.instance} {sighting.status} at {sighting.when()}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "seen": [{"status": s.status, "at": s.when()} for s in self.sightings],
            "polls": self.polls,
            "failed_polls": len(self.failures),
        }


class Watcher:
    """``with Watcher(observe, instance, zone, interval) as watch:`` around the build;
    ``watch.account`` holds what was seen. ``observe`` is None when the cloud's API
    could not be opened: the account then stays empty and says why."""

    def __init__(
        self,
        observe: Observe | None,
        instance: str,
        zone: str,
        interval: float,
        *,
        why_not: str = "",
    ) -> None:
        self.account = Account(instance, zone)
        self._observe = observe
        self._interval = max(interval, 0.01)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if observe is None and why_not:
            self.account.failures.append(why_not)

    def __enter__(self) -> Watcher:
        if self._observe is not None:
            self._thread = threading.Thread(
                target=self._run, name=f"watch {self.account.instance}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> Account:
        """Stop watching (after one last look) and return the account."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(10.0, self._interval * 2))
            self._thread = None
            self._poll()  # the state at the end of the build
        return self.account

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self._interval)

    def _poll(self) -> None:
        assert self._observe is not None
        started = time.thread_time()
        account = self.account
        account.polls += 1
        try:
            status = self._observe()
        except Exception as exc:  # a failed poll never fails the build
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not account.failures:
                say(f"watch: could not ask about {account.instance} ({reason}); the build goes on")
            account.failures.append(reason)
        else:
            if status is not None:
                account.see(status, time.time())
            elif account.sightings:
                account.see(GONE, time.time())
        finally:
            account.cpu_seconds += time.thread_time() - started
