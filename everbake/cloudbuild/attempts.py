"""Where and how to try a cloud build, and whether a failed try lost its VM.

A preempted build VM kills the Packer build and Packer does not resume, so a
build is a list of attempts: retry in the first zone (still preemptible), then
each further zone listed in the spec, then one non-preemptible VM in the first
zone. Only a lost VM (preempted, vanished mid-command, or a zone out of
capacity: the provider's `lost_vm` tells from the log, `confirm_lost` may ask
the cloud) moves on to the next attempt; any other failure is a real error and
stops the build (retrying it blindly would just fail again).
"""

from __future__ import annotations

from collections.abc import Sequence
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
