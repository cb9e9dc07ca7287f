"""Progress and warnings on stderr, one line each, prefixed with the command's name."""

from __future__ import annotations

import sys
from collections.abc import Callable


def prefixed(command: str) -> Callable[[str], None]:
    """A logger writing ``<command>: <message>`` lines, flushed at once (the agent
    and the user read stderr live)."""

    def log(message: str) -> None:
        sys.stderr.write(f"{command}: {message}\n")
        sys.stderr.flush()

    return log
