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
- a quota error names its metric: "Quota 'PREEMPTIBLE_CPUS' exceeded" leaves
  a standard VM possible (the next attempt is one), "Quota 'CPUS' exceeded" or
  an exhausted address quota closes that whole region (the next attempt goes to
  a zone of another region).
Since the console cannot be trusted to say "lost" (a VM preempted during boot
shows only "Timeout waiting for SSH.", one preempted mid-script "Script exited
with non-zero exit status: 143"), a failed preemptible attempt is judged by
what the cloud said about the VM (everbake.watcher, `judge`), whatever the
console printed. Each provider class lists the signals it knows
(`lost_vm_signals`); the planning here is shared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from everbake.errors import EverbakeError

PREEMPTED = "preempted"  # the cloud took the VM (certain, or confirmed through its API)
STOCKOUT = "stockout"  # the zone had no capacity for it
SUSPECT = "suspect"  # the session was lost: ask the cloud before retrying
QUOTA_PREEMPTIBLE = "quota-preemptible"  # no preemptible CPUs left: a standard VM may fit
QUOTA_REGION = "quota-region"  # CPUs or addresses used up in the region: another region


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
# GCE's quota errors name the metric and the region, e.g. "Quota 'CPUS' exceeded.
# Limit: 8.0 in region us-east1." (mesosphere-backup/terraform-dcos#61), "Quota
# 'IN_USE_ADDRESSES' exceeded. Limit: 4.0 in region us-central1."
# (kelseyhightower/kubernetes-the-hard-way#47), "Quota 'C2_CPUS' exceeded.
# Limit: 50.0 in region us-east1." (scylladb/scylla-cluster-tests#3649).
_QUOTA_PREEMPTIBLE = re.compile(r"Quota 'PREEMPTIBLE_CPUS' exceeded")
_QUOTA_REGION = re.compile(r"Quota '(?:[A-Z0-9]+_)?(?:CPUS|IN_USE_ADDRESSES)' exceeded")
# packer-plugin-sdk communicator/step_connect_ssh.go: all the console shows when
# the SSH wait runs out (failed dials are DEBUG lines only).
_SSH_WAIT = re.compile(r"Timeout waiting for SSH\.")
# hashicorp/packer provisioner/shell: "Script exited with non-zero exit status:
# %d"; systemd's SIGTERM at shutdown ends the script as 128+15.
_SIGTERM = re.compile(r"Script exited with non-zero exit status: 143\b")
# A signal: (pattern, kind, what the log then says about the VM).
Signal = tuple[re.Pattern[str], str, str]
# Both clouds, mid-provisioning: the VM is a suspect until the cloud confirms.
SESSION_LOST: tuple[Signal, ...] = (
    (_DISCONNECT, SUSPECT, "lost its SSH session in the middle of a script"),
    (_SSH_TIMEOUT, SUSPECT, "stopped answering SSH"),
    (_SSH_WAIT, SUSPECT, "never answered SSH"),
    (_SIGTERM, SUSPECT, "ended its script with SIGTERM (exit status 143)"),
)
# GCE at creation: certain without asking.
GCE_CREATION: tuple[Signal, ...] = (
    (_FAILED_START, PREEMPTED, "was preempted as it started"),
    (_NO_CAPACITY, STOCKOUT, "could not be had: the zone is out of capacity"),
    (_QUOTA_PREEMPTIBLE, QUOTA_PREEMPTIBLE, "could not be had: no preemptible CPU quota left"),
    (_QUOTA_REGION, QUOTA_REGION, "could not be had: the region's quota is used up"),
)
_METRIC = re.compile(r"Quota '([A-Z0-9_]+)'")
# Kinds decided at creation, from the cloud's own operation error.
AT_CREATION = (STOCKOUT, QUOTA_PREEMPTIBLE, QUOTA_REGION)


def region_of(zone: str) -> str:
    """The region of a GCE or Yandex zone: us-central1-a -> us-central1,
    ru-central1-b -> ru-central1."""
    head, sep, _ = zone.rpartition("-")
    return head if sep else zone


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
    last, loss = history[-1]
    no_room = {a.zone for a, lost in history if lost.kind == STOCKOUT}
    full = {region_of(a.zone) for a, lost in history if lost.kind == QUOTA_REGION}
    usable = [z for z in zones if z not in no_room and region_of(z) not in full]
    tried_pre = {a.zone for a, _ in history if a.preemptible}
    tried_std = {a.zone for a, _ in history if not a.preemptible}
    if loss.kind == QUOTA_PREEMPTIBLE and not tried_std:
        # A standard VM draws on CPUS, not PREEMPTIBLE_CPUS: it may still fit here.
        zone = last.zone if last.zone in usable else (usable or [last.zone])[0]
        return Attempt(
            number,
            zone,
            False,
            f"the project has no preemptible CPU quota left in {region_of(last.zone)}: "
            f"building on a standard (non-preemptible) VM in {zone}, which costs more",
        )
    if preemptible and not tried_std:
        left = [z for z in usable if z not in tried_pre]
        if left:
            return Attempt(
                number, left[0], True, f"{last.zone} {_why(loss)}: trying {_next(left[0], last)}"
            )
        # The round is over: one standard VM, where capacity was last seen.
        roomy = usable or [z for z in zones if region_of(z) not in full]
        if not roomy:
            return None
        return Attempt(
            number,
            roomy[0],
            False,
            f"no preemptible VM lasted in any zone listed; building on a standard "
            f"(non-preemptible) VM in {roomy[0]}, which costs more",
        )
    if loss.kind in (STOCKOUT, QUOTA_REGION):
        left = [z for z in usable if z not in tried_std]
        if left:
            return Attempt(
                number,
                left[0],
                False,
                f"{last.zone} {_why(loss)}: trying {_next(left[0], last, 'a standard VM')}",
            )
    return None


def _why(loss: Loss) -> str:
    if loss.kind == QUOTA_REGION:
        metric = _METRIC.search(loss.line)
        return f"hit the {metric.group(1) if metric else 'regional'} quota of its region"
    return "out of capacity" if loss.kind == STOCKOUT else "lost the VM"


def _next(zone: str, last: Attempt, vm: str = "a preemptible VM") -> str:
    if region_of(zone) != region_of(last.zone):
        return f"the next region's zone, {zone}, on {vm}"
    return f"the next zone, {zone}, on {vm}"


def judge(console: Loss | None, taken: str | None) -> Loss | None:
    """Whether a failed attempt lost its VM: the cloud's creation errors as they are,
    else what the cloud said about the VM (``taken``: e.g. "PREEMPTED at 01:02:03 UTC",
    None when it saw nothing), whatever the console said; a console suspect the
    cloud does not confirm stays a suspect (not retried)."""
    if console is not None and console.kind in (PREEMPTED, *AT_CREATION):
        return console
    if taken:
        said = console.reason if console else "failed"
        return Loss(
            PREEMPTED, f"{said}; the cloud took the VM ({taken})", console.line if console else ""
        )
    return console
