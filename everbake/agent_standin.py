"""A local stand-in for the Everest agent's task protocol, for `invoke run-local`.

It is the server side of what everest_runtime.status speaks, with the runtime's
own codec (everest_runtime.agentproto): a handshake frame (type byte 0 + task
id), then length-prefixed UTF-8 frames. Statuses are printed live as
"[task <id>] <message>"; shared variables live in memory.

It is strict, to help model authors whose own client gets the protocol wrong: a
frame that is not valid is an error and never a status, every valid frame is
kept (also those read together with a bad one), and the error says what is
wrong in the author's terms (e.g. a length prefix that counts characters).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from everest_runtime.agentproto import (
    FrameReader,
    ProtocolError,
    counts_characters,
    frame,
    is_utf8,
    parse_handshake,
    text_frame,
    var_value,
)


def accept_forever(listener: socket.socket, on_accept: Callable[[socket.socket], None]) -> None:
    """Hand each accepted connection to ``on_accept`` until the listener is shut down."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        on_accept(conn)


class _Misframed(Exception):
    """The stream is out of step: nothing after this point can be read."""


@dataclass(frozen=True)
class Message:
    task_id: str
    text: str


class AgentStandin:
    """Threaded loopback server; use as a context manager or start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_status: Callable[[str], None] = print,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.on_status = on_status
        self.log = log or (lambda line: None)
        self.messages: list[Message] = []
        self.statuses: dict[str, str] = {}
        self.variables: dict[str, str] = {}
        self.errors: list[str] = []
        self.last_status: str | None = None
        self._lock = threading.Condition()
        self._listener: socket.socket | None = None
        self._connections: dict[socket.socket, str | None] = {}
        # Replies and broadcasts come from different threads; frames must not interleave.
        self._send_locks: dict[socket.socket, threading.Lock] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the agent stand-in is not started")
        return int(self._listener.getsockname()[1])

    def env(self, task_id: str) -> dict[str, str]:
        """The EVEREST_AGENT_* variables a task needs to reach this stand-in."""
        return {
            "EVEREST_AGENT_ADDRESS": self.host,
            "EVEREST_AGENT_PORT": str(self.port),
            "EVEREST_AGENT_TASK_ID": task_id,
        }

    def start(self) -> AgentStandin:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._requested_port))
        listener.listen(16)
        self._listener = listener
        self._spawn(accept_forever, listener, self._accepted)
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # Remember the port so a later start() (agent restart) reuses it.
            self._requested_port = listener.getsockname()[1]
            _quiet_shutdown(listener)
            listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _quiet_shutdown(conn)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> AgentStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[AgentStandin], bool], timeout: float = 5.0) -> bool:
        """Block until predicate(self) holds (checked whenever a frame arrives)."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self), timeout)

    def push(self, name: str, value: str | None) -> None:
        """Send VAR_VALUE to every connected task, as the agent does on a change."""
        with self._lock:
            if value is None:
                self.variables.pop(name, None)
            else:
                self.variables[name] = value
        self._broadcast(var_value(name, value), exclude=None)

    # -- connections -------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn] = None
            self._send_locks[conn] = threading.Lock()
        self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        task_id: str | None = None
        reader = FrameReader()
        try:
            while chunk := conn.recv(65536):
                try:
                    payloads, broken = reader.feed(chunk), None
                except ProtocolError as error:
                    payloads, broken = error.payloads, error
                for index, payload in enumerate(payloads):
                    following = b"".join(map(frame, payloads[index + 1 :])) + reader.buffered
                    if task_id is None:
                        task_id = parse_handshake(payload)
                        with self._lock:
                            self._connections[conn] = task_id
                            self._lock.notify_all()
                        continue
                    last = index == len(payloads) - 1
                    text = self._decode(task_id, payload, following, suspect=last and broken)
                    if text is not None:
                        self._handle(conn, task_id, text)
                if broken is not None:
                    explained = counts_characters(reader.buffered)
                    raise _Misframed(explained or str(broken))
            if reader.pending:
                self._error(f"task {task_id}: connection closed inside a frame")
        except _Misframed as error:
            self._error(f"task {task_id}: {error}; closing the connection")
        except ProtocolError as error:  # the handshake
            self._error(f"task {task_id}: {error}; closing the connection")
        except OSError as error:
            self._error(f"task {task_id}: {error}")
        finally:
            with self._lock:
                self._connections.pop(conn, None)
                self._send_locks.pop(conn, None)
                self._lock.notify_all()
            conn.close()

    def _decode(self, task_id: str, payload: bytes, following: bytes, suspect) -> str | None:
        """The frame's text, or None (an error is recorded) when it is not valid.
        Raises _Misframed when it shows that the sender's framing is wrong.
        ``suspect``: a bad header follows in the same read."""
        explained = None
        if suspect or not is_utf8(payload):
            explained = counts_characters(frame(payload) + following)
        if explained:
            raise _Misframed(explained)
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as error:
            self._error(
                f"task {task_id}: a message is not valid UTF-8 ({error.reason} at byte "
                f"{error.start}: {payload[:60]!r}); it is not taken as a status"
            )
            return None

    def _handle(self, conn: socket.socket, task_id: str, text: str) -> None:
        verb, _, rest = text.partition(" ")
        with self._lock:
            self.messages.append(Message(task_id, text))
            if verb == "VAR_GET":
                value = self.variables.get(rest.strip())
            elif verb == "VAR_SET_MD":
                name, _, value = rest.partition(" ")
                self.variables[name] = value
            else:
                self.statuses[task_id] = text
                self.last_status = text
            self._lock.notify_all()
        if verb == "VAR_GET":
            name = rest.strip()
            self._send(conn, var_value(name, value))
        elif verb == "VAR_SET_MD":
            self._broadcast(var_value(name, value), exclude=conn)
        else:
            self.on_status(f"[task {task_id}] {text}")

    def _broadcast(self, text: str, exclude: socket.socket | None) -> None:
        with self._lock:
            targets = [c for c, tid in self._connections.items() if tid and c is not exclude]
        for conn in targets:
            self._send(conn, text)

    def _send(self, conn: socket.socket, text: str) -> None:
        with self._lock:
            send_lock = self._send_locks.get(conn)
        if send_lock is None:
            return
        try:
            with send_lock:
                conn.sendall(text_frame(text))
        except OSError as error:
            self._error(f"could not answer a task: {error}")

    def _error(self, line: str) -> None:
        with self._lock:
            self.errors.append(line)
        self.log(f"agent stand-in: {line}")


def _quiet_shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
