"""Python version ranges like ">=3.6,<3.10" at minor-version granularity, and the
Debian releases every provider offers as a base with their python3."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Debian release -> (suite, its python3): the bases every provider offers.
DEBIAN_RELEASES = {"11": ("bullseye", "3.9"), "12": ("bookworm", "3.11"), "13": ("trixie", "3.13")}
SUITE_RELEASE = {suite: release for release, (suite, _) in DEBIAN_RELEASES.items()}
# Minor versions a range is expanded to for the in-image check (50-agent.sh).
_CANDIDATES = [(2, 7)] + [(3, minor) for minor in range(0, 21)]
_CLAUSE_RE = re.compile(r"^\s*(~=|==|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)(\.\*)?\s*$")


@dataclass(frozen=True)
class Supported:
    """The agent's supported Pythons and where that was read."""

    text: str  # a specifier like ">=3.6,<3.10", or the classifiers' versions
    where: str  # e.g. "agent archive setup.cfg", "[agent] python_requires"
    versions: frozenset[tuple[int, int]] | None = None  # classifiers: the exact list

    def allows(self, version: tuple[int, int]) -> bool:
        if self.versions is not None:
            return version in self.versions
        return all(_clause_allows(clause, version) for clause in self.text.split(",") if clause)

    def allowed(self) -> list[str]:
        """Every X.Y among the known minors that the range admits."""
        return [f"{a}.{b}" for a, b in _CANDIDATES if self.allows((a, b))]


def parse_version(text: str) -> tuple[int, int]:
    """ "3.11" -> (3, 11)."""
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def check_specifier(text: str) -> str | None:
    """Why ``text`` is not a specifier like ">=3.6,<3.10" (None when it is one)."""
    clauses = [c for c in text.split(",") if c.strip()]
    if not clauses:
        return "is empty"
    for clause in clauses:
        if not _CLAUSE_RE.match(clause):
            return f"clause '{clause.strip()}' is not like '>=3.6' or '<3.10'"
    return None


def _clause_allows(clause: str, version: tuple[int, int]) -> bool:
    """One clause at minor-version granularity: an X.Y interpreter may be any X.Y.Z."""
    match = _CLAUSE_RE.match(clause)
    if match is None:  # checked when read; an unknown clause admits nothing
        return False
    op, star = match.group(1), bool(match.group(3))
    parts = tuple(int(p) for p in match.group(2).split("."))
    want = (*parts, 0)[:2]
    patch = len(parts) > 2  # ">=3.6.1" still admits a late enough 3.6
    if star or op == "~=":
        # ==3.* / ==3.9.*: the leading parts; ~=3.6 is >=3.6, ==3.*; ~=3.6.1 is ==3.6.*.
        prefix = parts if star else parts[:-1]
        same = version[: len(prefix[:2])] == prefix[:2]
        if op == "!=":
            return not same
        return same and (op != "~=" or version >= want)
    if op == "==":
        return version == want
    if op == "!=":
        return patch or version != want
    if op in (">=", "<="):
        return version >= want if op == ">=" else version <= want
    if op == ">":
        return version >= want if patch else version > want
    return version <= want if patch else version < want  # "<"
