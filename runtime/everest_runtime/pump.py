"""Pass one of the model's output streams through: redacted, to our own stream
(the agent captures it) and into a log, with status-prefixed lines turned into
status messages. Nothing that goes wrong on the way (a full disk under the log,
our own stdout closed) stops the bytes passing through: the model must never
block on a pipe nobody reads.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable

from . import redact

READ = 1 << 20  # with the pipe enlarged to match (set_pipe_size)
MAX_STATUS_LINE = 4096  # a status line longer than this is cut (the rest still passes)


class Pump(threading.Thread):
    def __init__(
        self,
        fd: int,
        sink_fd: int | None,
        log_fd: int | None,
        log_name: str,
        prefix: str | None,
        on_status: Callable[[str], None],
        secrets: list[str],
        max_log_bytes: int,
    ) -> None:
        super().__init__(name=f"everest-pump-{log_name}", daemon=True)
        self.fd, self.sink_fd, self.log_fd, self.log_name = fd, sink_fd, log_fd, log_name
        self.prefix = prefix.encode() if prefix else None
        self.on_status = on_status
        self.redactor = redact.Stream(secrets)
        self.max_log_bytes = max_log_bytes
        self.logged = 0
        self.problem = ""  # what went wrong with the log, for the final status
        self._line: bytearray | None = bytearray()  # the open line's start; None: no status
        self._open = False  # inside a line begun in an earlier read

    def run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, READ)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            self._emit(self.redactor.feed(data))
        self._emit(self.redactor.close())
        if self._open and self.prefix is not None:
            self._close_line()
        os.close(self.fd)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.sink_fd is not None:
            try:
                _write_all(self.sink_fd, data)
            except OSError:
                self.sink_fd = None  # our own stream is gone: keep logging, keep the model going
        self._log(data)
        if self.prefix is not None:
            self._lines(data)

    def _log(self, data: bytes) -> None:
        if self.log_fd is None:
            return
        room = self.max_log_bytes - self.logged
        part = data[: max(room, 0)]
        try:
            if part:
                _write_all(self.log_fd, part)
                self.logged += len(part)
            if len(part) < len(data):
                note = (
                    f"\n[everest-run-task: {self.log_name} stops at {self.max_log_bytes} bytes]\n"
                )
                _write_all(self.log_fd, note.encode())
                self.problem = f"{self.log_name} cut at {self.max_log_bytes} bytes"
                self.log_fd = None
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            why = "disk full" if full else (exc.strerror or str(exc))
            self.problem = f"{why}: {self.log_name} incomplete"
            self.log_fd = None

    def _lines(self, data: bytes) -> None:
        """Find status lines with C-speed searches: only a line that starts with
        the prefix is ever looked at (a log of millions of lines costs a few
        find() calls per read)."""
        prefix = self.prefix
        assert prefix is not None
        n, pos = len(data), 0
        if self._open:  # a line begun in an earlier read
            end = data.find(b"\n")
            self._grow(data if end < 0 else data[:end])
            if end < 0:
                return
            self._close_line()
            pos = end + 1
        while pos < n:  # pos: the start of a line
            rest = n - pos
            if data.startswith(prefix, pos) or (
                rest < len(prefix) and prefix.startswith(data[pos:])
            ):
                end = data.find(b"\n", pos)
                if end < 0:
                    self._open, self._line = True, bytearray(data[pos : pos + MAX_STATUS_LINE])
                    return
                self._status_line(data[pos:end])
                pos = end + 1
                continue
            hit = data.find(b"\n" + prefix, pos)
            if hit >= 0:
                pos = hit + 1
                continue
            last = data.rfind(b"\n", pos)
            if last < 0:  # this line goes on in the next read, and is no status
                self._open, self._line = True, None
                return
            pos = last + 1

    def _grow(self, piece: bytes) -> None:
        line = self._line
        if line is None:
            return
        line += piece[: max(0, MAX_STATUS_LINE - len(line))]
        prefix = self.prefix or b""
        if not (line.startswith(prefix) or prefix.startswith(bytes(line))):
            self._line = None  # cannot be a status line any more

    def _close_line(self) -> None:
        if self._line is not None:
            self._status_line(bytes(self._line))
        self._open, self._line = False, bytearray()

    def _status_line(self, line: bytes) -> None:
        assert self.prefix is not None
        line = line.rstrip(b"\r")
        if line.startswith(self.prefix):
            self.on_status(line[len(self.prefix) :].decode("utf-8", "replace"))


def set_pipe_size(fd: int, size: int = READ) -> None:
    """Fewer, larger reads of a chatty model (Linux F_SETPIPE_SZ; else unchanged)."""
    try:
        import fcntl

        fcntl.fcntl(fd, 1031, size)  # F_SETPIPE_SZ (fcntl names it from Python 3.10)
    except (OSError, ImportError, ValueError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[written:]
