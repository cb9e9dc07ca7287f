"""Status client for the Everest agent task protocol (see agentproto.py).

send() only appends to a bounded queue; a background thread connects, writes
whole frames and reconnects with backoff, so whatever the agent does (down,
slow, restarting) the model is never blocked or crashed by a status update.
When the queue is full the OLDEST status is dropped: the last status is the one
the job shows. Shared-variable requests are never dropped before statuses.

The protocol has no acknowledgements: a frame is known to have arrived only when
the session ends cleanly (we shut down writing, the agent reads the rest and
closes). So every frame sent ends up in exactly one count: ``delivered`` (written
on a session that then ended cleanly), ``unconfirmed`` (written on a connection
the agent dropped, by reset or an unasked close: it may be lost) or ``dropped``
(never written: queue full, or still queued at close). A batch about to be
written after the agent has closed its side is put back and goes on the next
connection.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import random
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

from . import agentproto, redact
from .agentproto import DEFAULT_ADDRESS, agent_from_env
from .stderrlog import prefixed

if TYPE_CHECKING:  # annotations only: the runtime still runs on Python 3.8
    from collections.abc import Callable

    VarCallback = Callable[[str, str | None], None]
    _Entry = tuple[bool, bytes]  # (droppable, frame bytes)

BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
# One write carries at most this much, so a requeue after a failure stays cheap.
BATCH_BYTES = 64 * 1024


_stderr_log = prefixed("everest-status")


class StatusClient:
    """One task's connection to its agent; all methods are thread-safe."""

    def __init__(
        self,
        address: str,
        port: int,
        task_id: str,
        queue_size: int = 1000,
        connect_timeout: float = 2.0,
        write_timeout: float = 30.0,
        log: Callable[[str], None] = _stderr_log,
        secrets: list[str] | None = None,
    ) -> None:
        # What must never reach the agent (redact.py); default: this environment's.
        self.secrets = redact.secret_values(os.environ) if secrets is None else secrets
        self.address = address or DEFAULT_ADDRESS
        self.port = int(port)
        self.task_id = str(task_id)
        self.dropped = 0  # never written (queue full, or still queued at close)
        self.unconfirmed = 0  # written on a connection the agent dropped: maybe lost
        self.delivered = 0  # written on a session that ended cleanly
        self.sent = 0  # written to a connection (delivered or unconfirmed, or not yet known)
        self.connects = 0
        self._queue_size = max(1, queue_size)
        self._connect_timeout = connect_timeout
        self._write_timeout = write_timeout
        self._log = log
        self._handshake = agentproto.handshake(self.task_id)
        self._queue: collections.deque[_Entry] = collections.deque()
        self._inflight: list[_Entry] = []
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # wakes the sender
        self._changed = threading.Condition(self._lock)  # wakes flush() and get_var()
        self._sock: socket.socket | None = None
        self._written = 0  # frames written on _sock: confirmed only by a clean close
        self._ended_cleanly = False  # the agent closed after our shutdown (close())
        self._reader: threading.Thread | None = None
        self._dead: list[socket.socket] = []  # dropped by the reader; the sender closes them
        self._stop = False
        self._reported_down = False
        self._vars: dict[str, str | None] = {}
        self._var_generation: dict[str, int] = {}
        self._callbacks: list[VarCallback] = []
        self._sender = threading.Thread(target=self._run, name="everest-status", daemon=True)
        self._sender.start()

    # -- caller side -------------------------------------------------------

    def send(self, message: str) -> None:
        """Queue a status message (redacted); returns at once and never raises."""
        with contextlib.suppress(Exception):
            text = redact.text(str(message), self.secrets)
            self._enqueue(agentproto.text_frame(text), droppable=True)

    def forward(self, text: str) -> None:
        """Queue a frame relayed for someone else (a shared-variable request from
        the model): kept when the queue is full, like set_var and get_var."""
        with contextlib.suppress(Exception):
            self._enqueue(
                agentproto.text_frame(str(text)), droppable=False
            )  # redacted by the caller

    def set_var(self, name: str, value: str) -> None:
        """Set a job-wide shared variable (the agent broadcasts it; no reply)."""
        _check_var_name(name)
        value = redact.text(str(value), self.secrets)
        with self._lock:
            self._vars[name] = value
        self._enqueue(agentproto.text_frame(agentproto.var_set(name, value)), droppable=False)

    def get_var(self, name: str, timeout: float = 10.0) -> str | None:
        """Ask the agent for a shared variable; None when it is unset (NULL).

        Raises TimeoutError when no VAR_VALUE for `name` arrives in time.
        """
        _check_var_name(name)
        deadline = time.monotonic() + timeout
        with self._lock:
            asked_at = self._var_generation.get(name, 0)
        self._enqueue(agentproto.text_frame(agentproto.var_get(name)), droppable=False)
        with self._lock:
            while self._var_generation.get(name, 0) == asked_at:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no value for shared variable {name!r} from the Everest agent "
                        f"at {self.address}:{self.port} within {timeout} s"
                    )
                self._changed.wait(remaining)
            return self._vars.get(name)

    def on_var(self, callback: VarCallback) -> VarCallback:
        """Call callback(name, value) for every VAR_VALUE (replies and pushes)."""
        with self._lock:
            self._callbacks.append(callback)
        return callback

    @property
    def variables(self) -> dict[str, str | None]:
        """A copy of the latest known value of every shared variable."""
        with self._lock:
            return dict(self._vars)

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._sock is not None

    @property
    def pending(self) -> int:
        """Frames queued or being written."""
        with self._lock:
            return len(self._queue) + len(self._inflight)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written to the agent's connection.
        False on timeout, or when a frame was dropped or a connection lost meanwhile.
        Written is not delivered: only close() can confirm that."""
        deadline = time.monotonic() + timeout
        with self._lock:
            lost_before = self.dropped + self.unconfirmed
            while self._queue or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop:
                    return False
                self._changed.wait(remaining)
            return self.dropped + self.unconfirmed == lost_before

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued, then end the session as the protocol says (shut
        down writing, read until the agent closes). True only when every frame ever
        sent was delivered: written on a session the agent then closed cleanly."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._lock:
            if self._stop:
                return self.dropped == 0 and self.unconfirmed == 0
            self._stop = True
            sock = self._sock
            self._work.notify_all()
        self._sender.join(max(0.0, deadline - time.monotonic()))
        stuck = self._sender.is_alive()  # still inside a write the agent does not read
        if sock is not None:
            _shutdown(sock, socket.SHUT_RDWR if stuck else socket.SHUT_WR)
            reader = self._reader
            if reader is not None:
                reader.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            clean = sock is not None and self._ended_cleanly and not stuck
            if clean:
                self.delivered += self._written
            else:
                self.unconfirmed += self._written + (len(self._inflight) if stuck else 0)
            self._written = 0
            lost = len(self._queue) + (0 if stuck else len(self._inflight))
            self.dropped += lost
            self._queue.clear()
        if sock is not None:
            sock.close()
        for old in self._dead:
            old.close()
        where = f"the agent at {self.address}:{self.port}"
        if lost:
            self._log(f"{lost} status message(s) never reached {where}")
        if self.unconfirmed:
            self._log(
                f"{self.unconfirmed} status message(s) were written to {where} but the "
                "connection was lost before it confirmed them; some may be missing"
            )
        if self.dropped - lost:
            self._log(
                f"dropped {self.dropped - lost} older status message(s) while the queue was full"
            )
        return self.dropped == 0 and self.unconfirmed == 0

    def __enter__(self) -> StatusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------

    def _enqueue(self, data: bytes, droppable: bool) -> None:
        with self._lock:
            if self._stop:
                self.dropped += 1
                return
            if len(self._queue) >= self._queue_size:
                self._drop_oldest()
            self._queue.append((droppable, data))
            self._work.notify()

    def _drop_oldest(self) -> None:
        # Prefer an old status over a variable request; the head is usually a status.
        for index, (droppable, _) in enumerate(self._queue):
            if droppable:
                del self._queue[index]
                break
        else:
            self._queue.popleft()
        self.dropped += 1

    def _take_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0][1]) <= BATCH_BYTES):
            entry = self._queue.popleft()
            batch.append(entry)
            size += len(entry[1])
        return batch

    def _run(self) -> None:
        delay = BACKOFF_MIN
        while True:
            with self._lock:
                while self._sock is not None and not self._queue and not self._stop:
                    self._work.wait()
                dead, self._dead = self._dead, []
                if self._stop:
                    return
                sock = self._sock
                batch = self._take_batch() if sock is not None else []
                self._inflight = batch
            for old in dead:
                old.close()
            if sock is not None and batch and _peer_closed(sock):
                # The agent has closed its side: what we would write now is lost.
                self._requeue(batch)
                self._disconnect(sock)
                continue
            if sock is None:
                if self._connect():
                    delay = BACKOFF_MIN
                else:
                    with self._lock:
                        if not self._stop:
                            self._work.wait(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, BACKOFF_MAX)
                continue
            try:
                sock.sendall(b"".join(data for _, data in batch))
            except Exception:
                # Some bytes of the batch may have reached the old connection; the
                # whole batch goes again, from a frame boundary, on a new one.
                self._requeue(batch)
                self._disconnect(sock)
                continue
            with self._lock:
                self._inflight = []
                self.sent += len(batch)
                if self._sock is sock:
                    self._written += len(batch)
                else:  # the reader saw the connection go while we wrote
                    self.unconfirmed += len(batch)
                self._changed.notify_all()

    def _requeue(self, batch: list[_Entry]) -> None:
        with self._lock:
            self._inflight = []
            self._queue.extendleft(reversed(batch))
            while len(self._queue) > self._queue_size:
                self._drop_oldest()
            self._changed.notify_all()

    def _connect(self) -> bool:
        try:
            sock = socket.create_connection((self.address, self.port), self._connect_timeout)
        except Exception as error:
            self._report_down(error)
            return False
        try:
            sock.settimeout(self._write_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(self._handshake)
        except Exception as error:
            sock.close()
            self._report_down(error)
            return False
        if self._reported_down:
            self._reported_down = False
            self._log(f"reconnected to the agent at {self.address}:{self.port}")
        reader = threading.Thread(
            target=self._read, args=(sock,), name="everest-status-reader", daemon=True
        )
        with self._lock:
            if self._stop:
                sock.close()
                return True
            self._sock = sock
            self._written = 0
            self._ended_cleanly = False
            self._reader = reader
            self.connects += 1
        reader.start()
        return True

    def _report_down(self, error: Exception) -> None:
        if not self._reported_down:
            self._reported_down = True
            self._log(
                f"agent at {self.address}:{self.port} unreachable ({_describe(error)}); "
                "status is queued and retried"
            )

    def _lose(self, sock: socket.socket) -> None:
        """The agent dropped ``sock`` (caller holds the lock): what was written on
        it is unconfirmed."""
        if self._sock is sock:
            self._sock = None
            self.unconfirmed += self._written
            self._written = 0
            self._changed.notify_all()

    def _disconnect(self, sock: socket.socket) -> None:
        with self._lock:
            self._lose(sock)
        _shutdown(sock, socket.SHUT_RDWR)
        sock.close()

    def _read(self, sock: socket.socket) -> None:
        reader = agentproto.FrameReader()
        clean = False
        try:
            while True:
                try:
                    data = sock.recv(65536)
                except socket.timeout:  # TimeoutError only from 3.10 on; the runtime runs on 3.8
                    continue
                if not data:
                    clean = True
                    break
                for payload in reader.feed(data):
                    self._on_frame(payload)
        except Exception:
            pass
        with self._lock:
            if self._sock is not sock:
                return
            if self._stop:
                self._ended_cleanly = clean  # close() shut down writing: this ends the session
            else:
                # The agent went away unasked: let the sender reconnect (it owns closing).
                self._lose(sock)
                self._dead.append(sock)
                _shutdown(sock, socket.SHUT_RDWR)
                self._work.notify()

    def _on_frame(self, payload: bytes) -> None:
        parsed = agentproto.parse_var_value(payload.decode("utf-8", "replace"))
        if parsed is None:
            return
        name, value = parsed
        with self._lock:
            self._vars[name] = value
            self._var_generation[name] = self._var_generation.get(name, 0) + 1
            self._changed.notify_all()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(name, value)
            except Exception as error:
                self._log(f"shared-variable callback failed: {_describe(error)}")


def _check_var_name(name: str) -> None:
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"shared variable name must be non-empty without spaces: {name!r}")


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the agent has closed its side (FIN or reset) of ``sock``, looked at
    without consuming anything the reader thread has yet to read."""
    import select

    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _shutdown(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _describe(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text or type(error).__name__


# -- module level: the task's own agent from the environment ---------------

_default: StatusClient | None = None
_default_lock = threading.Lock()
_default_resolved = False


def default_client() -> StatusClient | None:
    """The process-wide client for EVEREST_AGENT_*, closed at exit; None without an agent."""
    global _default, _default_resolved
    with _default_lock:
        if not _default_resolved:
            _default_resolved = True
            agent = agent_from_env()
            if agent is not None:
                _default = StatusClient(*agent)
                atexit.register(_default.close, 2.0)
        return _default


def send(message: str) -> None:
    """Send a status to this task's agent (stderr when none is configured); never raises."""
    try:
        client = default_client()
        if client is None:
            sys.stderr.write(f"status: {message}\n")
            sys.stderr.flush()
        else:
            client.send(message)
    except Exception:
        pass


def flush(timeout: float = 5.0) -> bool:
    client = default_client()
    return True if client is None else client.flush(timeout)


def close(timeout: float = 5.0) -> bool:
    client = default_client()
    return True if client is None else client.close(timeout)
