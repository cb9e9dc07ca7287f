"""Where to try a cloud build next, and how a failed try lost its build VM.

A lost build VM kills the Packer build and Packer does not resume, so a build is
a series of attempts. One round tries every zone of build.<p>.zones once, in
order, on a preemptible VM (when the spec asks for one); then one standard VM
in the first zone that did not run out of capacity. A standard build that hits
a stock-out moves on to the next zone it has not tried. No zone is tried twice
in a round.

What Packer really prints decides (shared/facts/packer.md, last section):
- at creation, GCE's operation message: "Instance failed to start due to
  preemption." (a lost VM) or "... does not have enough resources available to
  fulfill the request" (a stock-out: another zone is the fix);
- mid-provisioning, a lost VM only shows as the shell provisioner losing its
  session ("Script disconnected unexpectedly") or an SSH dial timeout. That
  makes the VM a *suspect*: the provider must confirm with the cloud API
  (`confirm`) before the build moves on, and an unconfirmed suspect stops the
  build like any other failure (retrying it blindly would just fail again).
Each provider class lists the signals it knows (`lost_vm_signals`) and how it
confirms a suspect (`confirm_lost`); the planning here is shared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from everbake.errors import EverbakeError

PREEMPTED = "preempted"  # the cloud took the VM (certain, or confirmed through its API)
STOCKOUT = "stockout"  # the zone had no capacity for it
SUSPECT = "suspect"  # the session was lost: ask the cloud before retrying


@dataclass(frozen=True)
class Attempt:
    number: int
    zone: str
    preemptible: bool
    sentence: str  # what the log says before the attempt starts


@dataclass(frozen=True)
class Loss:
    kind: str  # PREEMPTED, STOCKOUT or SUSPECT
    reason: str  # what the log says about it
    line: str  # the console line it was read from


# Console lines, per provider, with where each comes from.
# hashicorp/packer provisioner/shell/provisioner.go: the error when the remote
# command ends without an exit status ("Script disconnected unexpectedly. If
# you expected your script to disconnect, i.e. from a restart, ...").
_DISCONNECT = re.compile(r"Script disconnected unexpectedly")
# The SSH communicator's dial error when the VM is gone, e.g. "dial tcp
# 35.195.1.2:22: i/o timeout" (hashicorp/packer#9133).
_SSH_TIMEOUT = re.compile(r"dial tcp \S+:22: i/o timeout")
# GCE's instance-insert operation errors, printed by googlecompute as
# "Error creating instance: ... * <message>" (hashicorp/packer#9133); the code
# ZONE_RESOURCE_POOL_EXHAUSTED itself is not printed.
_FAILED_START = re.compile(r"Instance failed to start due to preemption")
_NO_CAPACITY = re.compile(r"does not have enough resources available to fulfill the request")
# A signal: (pattern, kind, what the log then says about the VM).
Signal = tuple[re.Pattern[str], str, str]
# Both clouds, mid-provisioning: the VM is a suspect until the cloud confirms.
SESSION_LOST: tuple[Signal, ...] = (
    (_DISCONNECT, SUSPECT, "lost its SSH session in the middle of a script"),
    (_SSH_TIMEOUT, SUSPECT, "stopped answering SSH"),
)
# GCE at creation: certain without asking.
GCE_CREATION: tuple[Signal, ...] = (
    (_FAILED_START, PREEMPTED, "was preempted as it started"),
    (_NO_CAPACITY, STOCKOUT, "could not be had: the zone is out of capacity"),
)


def read_loss(signals: Iterable[Signal], output: Iterable[str]) -> Loss | None:
    """The first sign in Packer's console output that the build VM was lost, or None
    when the output shows an ordinary failure."""
    chosen = list(signals)
    for line in output:
        for pattern, kind, reason in chosen:
            if pattern.search(line):
                return Loss(kind, reason, line.strip())
    return None


def first_attempt(provider: str, zones: Sequence[str], preemptible: bool) -> Attempt:
    if not zones:
        raise EverbakeError(
            f"build.{provider}.zones is empty: list at least one zone in the image spec"
        )
    kind = "a preemptible" if preemptible else "a standard"
    return Attempt(1, zones[0], preemptible, f"building on {kind} VM in {zones[0]}")


def next_attempt(
    zones: Sequence[str], preemptible: bool, history: Sequence[tuple[Attempt, Loss]]
) -> Attempt | None:
    """The attempt after ``history`` (each attempt with how it lost its VM), or None
    when every choice is used up."""
    number = len(history) + 1
    stocked_out = [a.zone for a, loss in history if loss.kind == STOCKOUT]
    tried_pre = [a.zone for a, _ in history if a.preemptible]
    tried_std = [a.zone for a, _ in history if not a.preemptible]
    if preemptible and not tried_std:
        left = [z for z in zones if z not in tried_pre]
        if left:
            last = history[-1][0].zone
            why = "out of capacity" if history[-1][1].kind == STOCKOUT else "lost the VM"
            return Attempt(
                number,
                left[0],
                True,
                f"{last} {why}: trying the next zone, {left[0]}, on a preemptible VM",
            )
        # The round is over: one standard VM, where capacity was last seen.
        roomy = [z for z in zones if z not in stocked_out]
        zone = roomy[0] if roomy else zones[0]
        return Attempt(
            number,
            zone,
            False,
            f"no preemptible VM lasted in any zone listed; building on a standard "
            f"(non-preemptible) VM in {zone}, which costs more",
        )
    if history and history[-1][1].kind == STOCKOUT:
        left = [z for z in zones if z not in tried_std and z not in stocked_out]
        if left:
            return Attempt(
                number,
                left[0],
                False,
                f"{history[-1][0].zone} is out of capacity: trying {left[0]} on a standard VM",
            )
    return None
