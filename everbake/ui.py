"""Progress output: phases and steps on stderr, plain lines (CI logs stay readable)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Print '==> name', then '<== name (12.3 s)' or '!!! name failed after 4.5 s'."""
    say(f"==> {name}")
    start = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"!!! {name} failed after {time.monotonic() - start:.1f} s")
        raise
    say(f"<== {name} ({time.monotonic() - start:.1f} s)")
