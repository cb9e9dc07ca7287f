"""Limits for unpacking archives (kept apart so the warm path imports no archive code)."""

from __future__ import annotations

from typing import NamedTuple


class Limits(NamedTuple):
    max_bytes: int = 4 << 30  # total uncompressed size
    max_files: int = 200_000  # members of any kind


DEFAULT_LIMITS = Limits()
