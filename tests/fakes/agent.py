"""A fault-injecting fake Everest agent on 127.0.0.1 for the status client's tests.

Faults: not listening (connection refused), reset in the middle of a frame,
restart on the same or a new port, slow reading, VAR_VALUE pushed unprompted,
VAR_GET left unanswered. It checks every frame it receives: a handshake first
(type byte 0 + task id), then UTF-8 frames that pass `validate`; anything else,
including a frame cut short by the client, lands in `bad`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from everest_runtime.agentproto import (
    FrameReader,
    ProtocolError,
    frame,
    parse_handshake,
    text_frame,
    var_value,
)

from everbake.agent_standin import accept_forever


@dataclass
class Connection:
    index: int
    task_id: str | None = None
    handshake: bytes = b""  # the raw first frame, header included
    received: int = 0  # bytes read
    reset_by_us: bool = False
    cut_inside_frame: bool = False  # our reset left part of a frame unread
    raw: bytearray = field(default_factory=bytearray)


class FaultyAgent:
    def __init__(
        self,
        port: int = 0,
        *,
        expect_task_id: str | None = None,
        validate: Callable[[str], bool] | None = None,
        reset_after_bytes: int | None = None,
        resets: int = 1,
        read_delay: float = 0.0,
        read_chunk: int = 65536,
        rcvbuf: int | None = None,
        answer_var_get: bool = True,
        push_before_reply: list[tuple[str, str]] | None = None,
        variables: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.expect_task_id = expect_task_id
        self.validate = validate
        self.reset_after_bytes = reset_after_bytes
        self.resets_left = resets
        self.read_delay = read_delay
        self.read_chunk = read_chunk
        self.rcvbuf = rcvbuf
        self.answer_var_get = answer_var_get
        self.push_before_reply = list(push_before_reply or [])
        self.variables = dict(variables or {})
        self.connections: list[Connection] = []
        self.texts: list[str] = []  # every non-handshake frame, in arrival order
        self.bad: list[str] = []
        self._cond = threading.Condition()
        self._listener: socket.socket | None = None
        self._open: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------

    def start(self, port: int | None = None) -> FaultyAgent:
        """Listen on `port` (default: the previous one, so a restart keeps it)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        listener.bind(("127.0.0.1", self.port if port is None else port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping = False
        self._spawn(accept_forever, listener, self._accepted)
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection: the port now refuses."""
        self._stopping = True
        if self._listener is not None:
            # shutdown() wakes the accept() thread; close() alone leaves it listening.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._cond:
            conns = list(self._open.values())
        for conn in conns:
            _abort(conn)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def restart(self, port: int | None = None) -> None:
        self.stop()
        self.start(port)

    def __enter__(self) -> FaultyAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation and pushes ---------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def push(self, name: str, value: str | None) -> None:
        with self._cond:
            conns = list(self._open.values())
        for conn in conns:
            _send_var(conn, name, value)

    @property
    def statuses(self) -> list[str]:
        return [t for t in self.texts if not t.startswith(("VAR_GET ", "VAR_SET_MD "))]

    # -- serving -------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accepted(self, conn: socket.socket) -> None:
        with self._cond:
            record = Connection(index=len(self.connections))
            self.connections.append(record)
            self._open[record.index] = conn
            self._cond.notify_all()
        self._spawn(self._serve, conn, record)

    def _serve(self, conn: socket.socket, record: Connection) -> None:
        parser = FrameReader()
        limit = None
        with self._cond:
            if self.reset_after_bytes is not None and self.resets_left > 0:
                self.resets_left -= 1
                limit = self.reset_after_bytes
        try:
            while True:
                want = self.read_chunk
                if limit is not None:
                    want = min(want, limit - record.received)
                    if want <= 0:
                        record.reset_by_us = True
                        record.cut_inside_frame = parser.pending > 0
                        _abort(conn)
                        break
                if self.read_delay:
                    time.sleep(self.read_delay)
                if self._stopping:
                    break
                chunk = conn.recv(want)
                if not chunk:
                    if parser.pending and not record.reset_by_us:
                        self._bad(record, f"connection ended inside a frame ({parser.pending} B)")
                    break
                record.received += len(chunk)
                record.raw += chunk
                for payload in parser.feed(chunk):
                    self._frame(conn, record, payload)
        except ProtocolError as error:
            self._bad(record, str(error))
        except OSError:
            pass
        finally:
            with self._cond:
                self._open.pop(record.index, None)
                self._cond.notify_all()
            conn.close()

    def _frame(self, conn: socket.socket, record: Connection, payload: bytes) -> None:
        if record.task_id is None:
            try:
                record.task_id = parse_handshake(payload)
            except (ProtocolError, UnicodeDecodeError) as error:
                self._bad(record, f"bad handshake: {error}")
                record.task_id = ""
                return
            with self._cond:
                record.handshake = frame(payload)
                self._cond.notify_all()
            if self.expect_task_id is not None and record.task_id != self.expect_task_id:
                self._bad(record, f"handshake task id {record.task_id!r}")
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._bad(record, f"frame is not UTF-8: {payload[:40]!r}")
            return
        if self.validate is not None and not self.validate(text):
            self._bad(record, f"frame failed validation: {text[:80]!r}")
        with self._cond:
            self.texts.append(text)
            if text.startswith("VAR_SET_MD "):
                _, name, value = ([*text.split(" ", 2), ""])[:3]
                self.variables[name] = value
            self._cond.notify_all()
        if text.startswith("VAR_GET ") and self.answer_var_get:
            name = text[len("VAR_GET ") :]
            for other, value in self.push_before_reply:
                _send_var(conn, other, value)
            _send_var(conn, name, self.variables.get(name))

    def _bad(self, record: Connection, problem: str) -> None:
        with self._cond:
            self.bad.append(f"connection {record.index}: {problem}")
            self._cond.notify_all()


_send_lock = threading.Lock()  # pushes and replies come from different threads


def _send_var(conn: socket.socket, name: str, value: str | None) -> None:
    try:
        with _send_lock:
            conn.sendall(text_frame(var_value(name, value)))
    except OSError:
        pass


def _abort(conn: socket.socket) -> None:
    """Make the coming close() a bare RST (linger 0), the way a crashing agent
    looks to the client: no FIN first. SHUT_RD wakes a recv() blocked in the
    serving thread (which then closes) without sending anything."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def free_port() -> int:
    """A loopback port that nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
