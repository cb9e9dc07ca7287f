"""The one result of a check: `invoke check` lines and the stores' offline answers
to "could we authenticate?" alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckLine:
    """What was checked, whether it is fine, what was found, and the fix if not."""

    what: str
    ok: bool
    detail: str
    fix: str = ""
