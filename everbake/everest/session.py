"""The client for the configured Everest: URL from EVEREST_URL or the invoke config's
``everest.url``, token from EVEREST_TOKEN or the stored login (never printed)."""

from __future__ import annotations

from typing import Any

from everbake.everest.client import URL_FIX, EverestClient, EverestError, resolve_url
from everbake.everest.token import client_for


def configured_url(config: Any) -> str:
    """``everest.url`` from an invoke config (top level, or under ``everbake``)."""
    for root in (config, config.get("everbake") or {}):
        section = root.get("everest") or {}
        if section.get("url"):
            return str(section["url"])
    return ""


def open_client(c: Any) -> EverestClient:
    url = resolve_url(configured_url(c.config))
    if not url:
        raise EverestError(f"no Everest URL; {URL_FIX}")
    return client_for(url)
