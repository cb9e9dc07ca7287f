"""Progress and warnings on stderr, one line each, prefixed with the command's name."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable


def write_line(line: str) -> None:
    """One line on stderr, flushed at once (the agent and the user read it live).
    Never raises: a closed or broken stderr must not take a task down."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def prefixed(command: str) -> Callable[[str], None]:
    """A logger writing ``<command>: <message>`` lines through `write_line`."""

    def log(message: str) -> None:
        write_line(f"{command}: {message}")

    return log
