"""What both clouds' build-VM adapters share: the attempt label, how our build VMs
are named, and a leftover found by `invoke clean-builds`."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every build VM (and, on Yandex, its disk) carries this label; its value is the
# attempt id, the last part of the VM's unique name.
BUILD_LABEL = "everbake-build"
# The build VM's name per attempt (everbake.bake.cloud_steps.instance_name).
BUILD_VM_NAME = re.compile(r"^everbake-(base|image)-([0-9a-f]{16})$")


def attempt_id(instance: str) -> str:
    """The attempt id in a build VM's name ('' when it is not one of ours)."""
    found = BUILD_VM_NAME.match(instance)
    return found.group(2) if found else ""


@dataclass(frozen=True)
class Leftover:
    kind: str  # instance or disk
    name: str
    zone: str
    created: str
    attempt: str  # the attempt id (label or name)

    def describe(self) -> str:
        return f"{self.kind} {self.name} in {self.zone} (created {self.created})"
