"""Run external commands: echo them, stream output with a prefix, keep a log tail.

Secrets go to a child only through ``env``; never through ``argv``, so the echo
and any error message can show the command as it is.
"""

from __future__ import annotations

import collections
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from everbake.errors import BuildError, ToolError


@dataclass(frozen=True)
class Result:
    returncode: int
    tail: list[str]


def require_tool(name: str, fix: str) -> str:
    """Path of the executable ``name`` or a ToolError saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise ToolError(f"'{name}' is not installed: {fix}")
    return path


def stream(
    argv: Sequence[str],
    *,
    prefix: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    log_path: Path | None = None,
    tail_lines: int = 30,
    check: bool = True,
    what: str | None = None,
    echo: bool = True,
) -> Result:
    """Run ``argv``, printing each output line as ``prefix | line`` on stderr.

    Output is also appended to ``log_path`` when given. On a non-zero exit and
    ``check``, raise BuildError naming ``what`` (or the command) with the tail.
    """
    if echo:
        print(f"$ {shlex.join(argv)}", file=sys.stderr, flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=False,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"cannot run '{argv[0]}': {exc.strerror}") from None
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail.append(line)
            print(f"{prefix} | {line}", file=sys.stderr, flush=True)
            if log:
                log.write(line + "\n")
        code = proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        if log:
            log.close()
    if code != 0 and check:
        label = what or shlex.join(argv[:3])
        shown = "\n".join(f"    {line}" for line in tail)
        raise BuildError(f"{label} failed (exit {code}); last output:\n{shown}")
    return Result(code, list(tail))
