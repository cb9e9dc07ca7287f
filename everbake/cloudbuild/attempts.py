"""Where and how to try a cloud build, and whether a failed try was a preemption.

A preempted build VM kills the Packer build and Packer does not resume, so a
build is a list of attempts: retry in the first zone (still preemptible), then
each further zone listed in the spec, then one non-preemptible VM in the first
zone. Only a preemption moves on to the next attempt; any other failure is a
real error and stops the build (retrying it blindly would just fail again).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from everbake.errors import EverbakeError


@dataclass(frozen=True)
class Attempt:
    number: int
    zone: str
    preemptible: bool
    sentence: str  # what the log says before the attempt starts


def plan_attempts(
    provider: str, zones: Sequence[str], preemptible: bool, retries_in_first_zone: int = 1
) -> list[Attempt]:
    """Ordered attempts for a build with these settings (see the module docstring)."""
    if not zones:
        raise EverbakeError(
            f"build.{provider}.zones is empty: list at least one zone in the image spec"
        )
    first = zones[0]
    if not preemptible:
        return [Attempt(1, first, False, f"building on a standard VM in {first}")]
    steps: list[tuple[str, bool, str]] = [(first, True, f"building on a preemptible VM in {first}")]
    for _ in range(retries_in_first_zone):
        steps.append((first, True, f"the build VM was preempted; retrying in {first}"))
    for zone in zones[1:]:
        steps.append(
            (zone, True, f"the build VM was preempted again; trying the next zone, {zone}")
        )
    steps.append(
        (
            first,
            False,
            f"preempted in every zone listed; building on a standard (non-preemptible) VM "
            f"in {first}, which costs more",
        )
    )
    return [Attempt(i, zone, pre, text) for i, (zone, pre, text) in enumerate(steps, 1)]


# Packer output that means the build VM went away under us, per provider.
_PREEMPTION = {
    "gcp": [
        re.compile(r"\bpreempted\b", re.IGNORECASE),
        re.compile(r"\bPREEMPTED\b"),
        re.compile(r"instance (was )?(terminated|stopped)", re.IGNORECASE),
        re.compile(r"compute\.instances\.preempted", re.IGNORECASE),
        re.compile(r"status(:| is| =)? *\"?TERMINATED", re.IGNORECASE),
    ],
    "yandex": [
        re.compile(r"\bpreempted\b", re.IGNORECASE),
        re.compile(r"instance (has been |was |is )?(stopped|terminated)", re.IGNORECASE),
        re.compile(r"status(:| is| =)? *\"?STOPP(ED|ING)", re.IGNORECASE),
    ],
}
# Lines that look alarming but are Packer's own teardown after any failure.
_TEARDOWN = re.compile(r"(deleting|destroying|cleaning up|stopping) (the )?instance", re.IGNORECASE)


def is_preemption(provider: str, output: Iterable[str]) -> bool:
    """Whether a failed Packer run's output says the build VM was preempted/stopped."""
    patterns = _PREEMPTION.get(provider)
    if patterns is None:
        raise EverbakeError(f"unknown provider '{provider}': choose gcp or yandex")
    for line in output:
        if _TEARDOWN.search(line):
            continue
        if any(pattern.search(line) for pattern in patterns):
            return True
    return False
