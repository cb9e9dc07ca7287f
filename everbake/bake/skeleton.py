"""The one flow every bake follows, whatever the provider:

    look up -> (up to date? stop) -> prepare -> lock -> look again (if another
    build held the lock) -> bake -> write the build record -> say what was built

The steps are chosen by the provider's kind (everbake.bake.build_spec): the
local ones in everbake.bake.local_steps, the clouds' in everbake.bake.cloud_steps.
This module knows neither. Whatever happens after the first look-up, the steps
release what they fetched for it (the agent archive), so a failed preparation
leaves nothing in build/.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from everbake.records import write_record
from everbake.ui import say


@dataclass(frozen=True)
class BuildOutcome:
    image: str
    provider: str
    up_to_date: bool
    record_path: Path
    record: dict[str, Any]


class BakeSteps(Protocol):
    lock_dir: Path  # one bake per directory at a time
    record_path: Path

    def look_up(self, again: bool) -> Any | None:
        """What exists with this image's fingerprint (None: nothing)."""
        ...

    def up_to_date(self, found: Any) -> BuildOutcome:
        """Say the image is up to date; the outcome without baking."""
        ...

    def prepare(self, found: Any | None) -> None:
        """What must fail before anything starts: secrets, --force over ``found``."""
        ...

    def bake(self, found: Any | None) -> dict[str, Any]:
        """Bake the image (over ``found`` when forced); the build record's data."""
        ...

    def outcome(self, record: dict[str, Any]) -> BuildOutcome:
        """Say what was built; the outcome of a bake whose record is written."""
        ...

    def release(self) -> None:
        """Drop what the look-ups fetched (run last, whatever happened)."""
        ...


def run(steps: BakeSteps, force: bool = False) -> BuildOutcome:
    started = time.monotonic()
    try:
        found = steps.look_up(again=False)
        if found is not None and not force:
            return steps.up_to_date(found)
        steps.prepare(found)
        with build_lock(steps.lock_dir) as waited:
            if waited and not force:
                # The build we waited for may have made this very image.
                again = steps.look_up(again=True)
                if again is not None:
                    return steps.up_to_date(again)
            record = steps.bake(found)
    finally:
        steps.release()
    record["duration_seconds"] = round(time.monotonic() - started, 1)
    write_record(steps.record_path, record)
    return steps.outcome(record)


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[bool]:
    """One build per build dir at a time; a second one waits and says so.
    Yields whether it waited: the caller should then look again at what exists."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            say(f"waiting for another build using {build_dir} to finish ...")
            waited = True
        if waited:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield waited
