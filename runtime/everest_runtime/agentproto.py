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
    """The peer sent bytes that are not a valid frame. ``payloads``: the whole
    frames read before the bad one (in the same feed), which are still valid."""

    def __init__(self, message: str, payloads: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.payloads = payloads or []


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def text_frame(text: str) -> bytes:
    # Length counts bytes of the encoding, never characters.
    return frame(text.encode("utf-8", "replace"))


def handshake(task_id: str) -> bytes:
    return frame(bytes([MESSAGE_MODE]) + task_id.encode("utf-8"))


def parse_handshake(payload: bytes) -> str:
    """The task id from a handshake frame's payload (agent side)."""
    if not payload or payload[0] != MESSAGE_MODE:
        kind = payload[0] if payload else "none"
        raise ProtocolError(
            f"handshake type byte is {kind}, expected {MESSAGE_MODE} (message mode)"
        )
    try:
        return payload[1:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("handshake task id is not valid UTF-8") from None


def var_value(name: str, value: str | None) -> str:
    """The agent's VAR_VALUE message (an unset variable is NULL)."""
    return f"VAR_VALUE {name} {'NULL' if value is None else value}"


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
        payloads: list[bytes] = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ProtocolError(f"frame length {length} exceeds {MAX_FRAME} bytes", payloads)
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

    @property
    def buffered(self) -> bytes:
        """The bytes not yet returned as frames (after a ProtocolError: from the
        bad header on)."""
        return bytes(self._buffer)


def counts_characters(stream: bytes) -> str | None:
    """If ``stream`` (raw bytes from a frame boundary) reads consistently once
    each length prefix is taken as a count of characters rather than UTF-8
    bytes, the sender has that (common) bug: say so, naming the first frame
    where the two differ. None when that reading does not explain the bytes."""
    position, first = 0, None
    while len(stream) - position >= HEADER.size:
        (count,) = HEADER.unpack_from(stream, position)
        body = stream[position + HEADER.size :]
        size = _bytes_of_characters(body, count)
        if size is None:
            break  # cut short: consistent as far as it goes
        text = body[:size].decode("utf-8")
        if size != count and first is None:
            first = (text, count, size)
        position += HEADER.size + size
    if first is None:
        return None
    text, count, size = first
    return (
        f'the length prefix counts characters, not UTF-8 bytes: "{text}" is {count} '
        f"characters but {size} bytes; the length must be len(text.encode('utf-8'))"
    )


def _bytes_of_characters(body: bytes, count: int) -> int | None:
    """How many bytes the first ``count`` UTF-8 characters of ``body`` take;
    None when body holds fewer or is not valid UTF-8 there."""
    seen = 0
    for index, byte in enumerate(body):
        if byte & 0xC0 != 0x80:  # a character starts here
            if seen == count:
                return index if is_utf8(body[:index]) else None
            seen += 1
    return len(body) if seen == count and is_utf8(body) else None


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
