"""Everest agent task protocol: where the agent is, framing, and the
shared-variable messages. Light on imports: everest-status starts with it.

Every frame is a 4-byte big-endian length followed by that many payload BYTES
(UTF-8 for text). The first frame a task sends is the handshake: type byte 0
("message mode") followed by the task id.
"""

from __future__ import annotations

import os
import struct

from .stderrlog import write_line

DEFAULT_ADDRESS = "localhost"
HEADER = struct.Struct(">I")
MESSAGE_MODE = 0
# A length above this means the stream is corrupt, not that a task is chatty.
MAX_FRAME = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame."""


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def text_frame(text: str) -> bytes:
    # Length counts bytes of the encoding, never characters.
    return frame(text.encode("utf-8", "replace"))


def handshake(task_id: str) -> bytes:
    return frame(bytes([MESSAGE_MODE]) + task_id.encode("utf-8"))


def var_get(name: str) -> str:
    return "VAR_GET " + name


def var_set(name: str, value: str) -> str:
    return f"VAR_SET_MD {name} {value}"


def parse_var_value(text: str) -> tuple[str, str | None] | None:
    """'VAR_VALUE name value' -> (name, value); NULL -> None; other text -> None."""
    if not text.startswith("VAR_VALUE "):
        return None
    parts = text.split(" ", 2)
    if len(parts) < 2 or not parts[1]:
        return None
    value = parts[2] if len(parts) == 3 else ""
    return parts[1], (None if value == "NULL" else value)


class FrameReader:
    """Incremental parser: feed() bytes as they arrive, get whole payloads back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ProtocolError(f"frame length {length} exceeds {MAX_FRAME}")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            payloads.append(bytes(self._buffer[HEADER.size : end]))
            del self._buffer[:end]
        return payloads

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)


def agent_from_env(environ: dict[str, str] | None = None) -> tuple[str, int, str] | None:
    """(address, port, task id) from EVEREST_AGENT_*, or None when not configured."""
    env = os.environ if environ is None else environ
    port_text = env.get("EVEREST_AGENT_PORT", "").strip()
    task_id = env.get("EVEREST_AGENT_TASK_ID", "").strip()
    if not port_text or not task_id:
        return None
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        write_line(
            f"everest-status: EVEREST_AGENT_PORT={port_text!r} is not a TCP port number; "
            "status goes to stderr"
        )
        return None
    address = env.get("EVEREST_AGENT_ADDRESS", "").strip() or DEFAULT_ADDRESS
    return address, port, task_id
