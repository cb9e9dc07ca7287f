"""The client for the configured Everest: URL from EVEREST_URL or the invoke config's
``everest.url`` (tasks_everest's defaults), token from EVEREST_TOKEN or the stored
login (never printed)."""

from __future__ import annotations

from typing import Any

from everbake.everest.client import URL_FIX, EverestClient, EverestError, resolve_url
from everbake.everest.token import client_for


def open_client(c: Any) -> EverestClient:
    url = resolve_url((c.config.get("everest") or {}).get("url", ""))
    if not url:
        raise EverestError(f"no Everest URL; {URL_FIX}")
    return client_for(url)
