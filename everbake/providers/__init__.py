"""Provider registry: local, gcp, yandex. An unknown name lists the choices.

Each provider is one class in one module here (docs/internals.md: "Adding a
provider"). A name becomes an object once, where the user named it (the task
layer: everbake.taskutil.providers_of); the library takes the objects.
The registry imports only the descriptions, never a flow.
"""

from __future__ import annotations

import difflib

from everbake.errors import EverbakeError
from everbake.providers.base import BuildSettings, GcTarget, Provider
from everbake.providers.cloud import CloudProvider
from everbake.providers.gcp import Gcp
from everbake.providers.local import Local
from everbake.providers.yandex import Yandex

PROVIDERS: dict[str, type[Provider]] = {cls.name: cls for cls in (Local, Gcp, Yandex)}
NAMES = tuple(PROVIDERS)
DEFAULT = Local.name  # the provider that needs no cloud account
# The clouds: their images are what an Everest resource starts VMs from.
CLOUDS = tuple(name for name, cls in PROVIDERS.items() if issubclass(cls, CloudProvider))

__all__ = [
    "CLOUDS",
    "DEFAULT",
    "NAMES",
    "PROVIDERS",
    "BuildSettings",
    "CloudProvider",
    "GcTarget",
    "Provider",
    "get",
]


def get(name: str) -> Provider:
    """The provider called ``name``; an unknown name is one line listing the choices."""
    try:
        return PROVIDERS[name]()
    except KeyError:
        near = difflib.get_close_matches(name, NAMES, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise EverbakeError(
            f"--provider {name}: unknown provider; {hint}choose one of: {', '.join(NAMES)}"
        ) from None
