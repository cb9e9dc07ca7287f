"""Editing example spec text in tests that derive their own spec from one."""

from __future__ import annotations


def without_agent_table(text: str) -> str:
    """``text`` without its [agent] table, so a test can append its own: TOML allows
    a table once, and the bookworm examples end with an [agent] table."""
    head, sep, tail = text.partition("\n[agent]\n")
    if not sep:
        return text
    rest = tail.split("\n[", 1)
    return head + ("\n[" + rest[1] if len(rest) == 2 else "\n")
