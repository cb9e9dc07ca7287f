"""Where and how to try a cloud build, and whether a failed try lost its VM.

A preempted build VM kills the Packer build and Packer does not resume, so a
build is a list of attempts: retry in the first zone (still preemptible), then
each further zone listed in the spec, then one non-preemptible VM in the first
zone. Only a lost VM (preempted, vanished mid-command, or a zone out of
capacity) moves on to the next attempt; any other failure is a real error and
stops the build (retrying it blindly would just fail again).
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
        steps.append((first, True, f"retrying on a preemptible VM in {first}"))
    for zone in zones[1:]:
        steps.append((zone, True, f"trying the next zone, {zone}, on a preemptible VM"))
    steps.append(
        (
            first,
            False,
            f"no preemptible VM lasted in any zone listed; building on a standard "
            f"(non-preemptible) VM in {first}, which costs more",
        )
    )
    return [Attempt(i, zone, pre, text) for i, (zone, pre, text) in enumerate(steps, 1)]


# Packer output that means the build VM was taken away or could not be had,
# per provider, with what the log says about it. Sources for the wording:
# "Instance failed to start due to preemption." (hashicorp/packer#9133);
# GCE's stock-out error ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS], "The zone
# '...' does not have enough resources available to fulfill the request", for
# which another zone is the fix; Packer's SSH communicator's "Remote command
# exited without exit status or exit signal" when the VM vanishes mid-command
# (hashicorp/packer#4066). Our provisioning never reboots, so that last one is
# not an expected disconnect.
_PREEMPTED = "was preempted"
_STOCKOUT = "could not be had: the zone is out of capacity"
_VANISHED = "went away in the middle of a command (preempted or stopped)"
_SSH_DROPPED = re.compile(r"remote command exited without exit status or exit signal", re.I)
_PREEMPTION: dict[str, list[tuple[re.Pattern[str], str]]] = {
    "gcp": [
        (re.compile(r"\bpreempt(ed|ion)\b", re.I), _PREEMPTED),
        (re.compile(r"compute\.instances\.preempted", re.I), _PREEMPTED),
        (re.compile(r"instance (was )?(terminated|stopped)", re.I), _PREEMPTED),
        (re.compile(r"status(:| is| =)? *\"?TERMINATED", re.I), _PREEMPTED),
        (re.compile(r"ZONE_RESOURCE_POOL_EXHAUSTED"), _STOCKOUT),
        (re.compile(r"does not have enough resources available", re.I), _STOCKOUT),
        (_SSH_DROPPED, _VANISHED),
    ],
    "yandex": [
        (re.compile(r"\bpreempt(ed|ion)\b", re.I), _PREEMPTED),
        (re.compile(r"instance (has been |was |is )?(stopped|terminated)", re.I), _PREEMPTED),
        (re.compile(r"status(:| is| =)? *\"?STOPP(ED|ING)", re.I), _PREEMPTED),
        (_SSH_DROPPED, _VANISHED),
    ],
}
# Lines that look alarming but are Packer's own teardown after any failure.
_TEARDOWN = re.compile(r"(deleting|destroying|cleaning up|stopping) (the )?instance", re.I)


def preemption_reason(provider: str, output: Iterable[str]) -> str | None:
    """How a failed Packer run lost its build VM ("was preempted", ...), or None
    when the output shows an ordinary failure, which is not worth retrying."""
    patterns = _PREEMPTION.get(provider)
    if patterns is None:
        raise EverbakeError(f"unknown provider '{provider}': choose gcp or yandex")
    for line in output:
        if _TEARDOWN.search(line):
            continue
        for pattern, reason in patterns:
            if pattern.search(line):
                return reason
    return None


def is_preemption(provider: str, output: Iterable[str]) -> bool:
    """Whether a failed Packer run lost its build VM (see preemption_reason)."""
    return preemption_reason(provider, output) is not None
