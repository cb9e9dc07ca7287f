"""Provider registry: local, gcp, yandex. An unknown name lists the choices."""

from __future__ import annotations

import difflib

from everbake.errors import EverbakeError
from everbake.providers.base import BuildSettings, CheckLine, Provider
from everbake.providers.gcp import Gcp
from everbake.providers.local import Local
from everbake.providers.yandex import Yandex

PROVIDERS: dict[str, type[Provider]] = {"local": Local, "gcp": Gcp, "yandex": Yandex}
NAMES = tuple(PROVIDERS)

__all__ = ["NAMES", "PROVIDERS", "BuildSettings", "CheckLine", "Provider", "get"]


def get(name: str) -> Provider:
    try:
        return PROVIDERS[name]()
    except KeyError:
        near = difflib.get_close_matches(name, NAMES, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise EverbakeError(
            f"--provider {name}: unknown provider; {hint}choose one of: {', '.join(NAMES)}"
        ) from None
