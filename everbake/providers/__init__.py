"""Provider registry: local, gcp, yandex. An unknown name lists the choices.

Each provider is one class in one module here (docs/internals.md: "Adding a
provider"); everything else asks the object `get(name)` returns.
"""

from __future__ import annotations

import difflib

from everbake.errors import EverbakeError
from everbake.providers.base import BuildSettings, CheckLine, Plugin, Provider
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
    "CheckLine",
    "Provider",
    "get",
]


def get(name: str | Provider) -> Provider:
    if isinstance(name, Provider):
        return name
    try:
        return PROVIDERS[name]()
    except KeyError:
        near = difflib.get_close_matches(name, NAMES, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise EverbakeError(
            f"--provider {name}: unknown provider; {hint}choose one of: {', '.join(NAMES)}"
        ) from None


def plugins() -> dict[str, Plugin]:
    """The Packer plugins of every provider, by plugin name (fingerprint inputs)."""
    return {cls.plugin.name: cls.plugin for cls in PROVIDERS.values() if cls.plugin}
