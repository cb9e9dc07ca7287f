"""The model's agent is the runner: a listener on 127.0.0.1 speaking the agent
task protocol (agentproto), so every status a model sends (everest-status, the
status library, any client of its own) passes the runner, which redacts it,
remembers the model's last word and forwards it to the real agent.

One thread, one selector, non-blocking sockets: a model that opens many
connections, sends garbage or never reads cannot block the runner or itself.
A session ends the way the protocol says: when the model shuts down writing,
the relay has taken every frame and closes its side, which is the model's
confirmation (delivery onwards is the runner's job, retried and reported).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable

from . import agentproto

MAX_CONNECTIONS = 128
MAX_PENDING_OUT = 1 << 20  # VAR_VALUE bytes queued for a model that does not read
MAX_FRAME = 1 << 20  # a status is a line, not a file: a bigger frame ends its session


class _Peer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = agentproto.FrameReader()
        self.greeted = False
        self.out = bytearray()


class Relay:
    """``on_text(text)`` gets each frame's text after the handshake, in order,
    from the relay's thread; ``push(text)`` sends a frame to every model session."""

    def __init__(self, on_text: Callable[[str], None], log: Callable[[str], None]) -> None:
        self._on_text = on_text
        self._log = log
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._peers: dict[socket.socket, _Peer] = {}
        self._lock = threading.Lock()
        self._pushes: list[bytes] = []
        self._stop = False
        self._warned: set[str] = set()
        self.sessions = 0
        self._thread = threading.Thread(target=self._run, name="everest-relay", daemon=True)
        self._thread.start()

    def push(self, text: str) -> None:
        with self._lock:
            self._pushes.append(agentproto.text_frame(text))
        self._wake()

    def close(self, timeout: float = 1.0) -> None:
        """Stop listening; frames already read have been handed over."""
        self._stop = True
        self._wake()
        self._thread.join(timeout)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already woken (buffer full) or closed
            self._wake_w.send(b"x")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._log(message)

    def _run(self) -> None:
        try:
            while not self._stop:
                for key, mask in self._selector.select(1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._service(key.data, mask)
            # Frames that arrived just before the end still count.
            for peer in list(self._peers.values()):
                self._read(peer)
        except Exception as exc:  # never take the task down
            self._log(f"status relay failed ({exc}); later statuses are lost")
        finally:
            for peer in list(self._peers.values()):
                self._drop(peer)
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            pushes, self._pushes = self._pushes, []
        for data in pushes:
            for peer in list(self._peers.values()):
                if peer.greeted:
                    if len(peer.out) + len(data) > MAX_PENDING_OUT:
                        continue  # this session never reads: it loses pushes, not the runner
                    peer.out += data
                    self._watch(peer)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        if len(self._peers) >= MAX_CONNECTIONS:
            self._warn("many", f"the model holds {MAX_CONNECTIONS} status sessions open; "
                       "refusing more until some close")  # fmt: skip
            sock.close()
            return
        sock.setblocking(False)
        peer = _Peer(sock)
        self._peers[sock] = peer
        self.sessions += 1
        self._selector.register(sock, selectors.EVENT_READ, peer)

    def _watch(self, peer: _Peer) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.out else 0)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.modify(peer.sock, events, peer)

    def _service(self, peer: _Peer, mask: int) -> None:
        if mask & selectors.EVENT_WRITE and peer.out:
            try:
                sent = peer.sock.send(peer.out)
                del peer.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(peer)
                return
            self._watch(peer)
        if mask & selectors.EVENT_READ:
            self._read(peer)

    def _read(self, peer: _Peer) -> None:
        while True:
            try:
                data = peer.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(peer)
                return
            if not data:  # the model ended the session: everything it sent is taken
                if peer.reader.pending:
                    self._warn("cut", "a status session of the model ended inside a frame")
                self._drop(peer)
                return
            try:
                payloads = peer.reader.feed(data)
            except agentproto.ProtocolError as exc:
                payloads = exc.payloads
                self._warn("bad", f"a status session of the model sent a bad frame ({exc})")
                self._deliver(peer, payloads)
                self._drop(peer)
                return
            self._deliver(peer, payloads)
            if peer.sock not in self._peers:
                return
            if peer.reader.pending > MAX_FRAME + agentproto.HEADER.size:
                self._warn("big", f"a status session of the model sent a frame over {MAX_FRAME} "
                           "bytes; session closed")  # fmt: skip
                self._drop(peer)
                return

    def _deliver(self, peer: _Peer, payloads: list[bytes]) -> None:
        for payload in payloads:
            if not peer.greeted:
                try:
                    agentproto.parse_handshake(payload)
                except agentproto.ProtocolError as exc:
                    self._warn("handshake", f"a status session of the model: {exc}")
                    self._drop(peer)
                    return
                peer.greeted = True
                continue
            try:
                self._on_text(payload.decode("utf-8", "replace"))
            except Exception as exc:
                self._warn("deliver", f"relaying a status failed ({exc})")

    def _drop(self, peer: _Peer) -> None:
        if self._peers.pop(peer.sock, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(peer.sock)
        peer.sock.close()
