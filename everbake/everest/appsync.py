"""export-app --update: bring an application on Everest in line with the export.

Everest's public API reads and replaces an application (``GET|PUT
/api/apps/<id or owner/alias>``, shared/facts/everest.md) but does not create
one or store its files: the first import goes through the web UI (the zip),
later exports update it here. Only the descriptor's own keys are compared and
sent; whatever else the server keeps on the application stays as it is.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from everbake.everest.client import EverestClient, EverestError, EverestNotFound
from everbake.everest.diff import diff_lines

# Everything the export decides; not ``alias`` (the application's address, which
# --update names) nor ``files`` (the server's list of the application's files).
SYNCED_KEYS = (
    "name",
    "annotation",
    "keywords",
    "description",
    "inputs",
    "outputs",
    "type",
    "config",
    "retryFailedTasks",
    "version",
)
_REF = re.compile(r"^(?:[0-9a-f]{24}|[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)$")


def app_path(ref: str) -> str:
    if not _REF.match(ref):
        raise EverestError(f"--update {ref!r}: give the application's id (24 hex) or owner/alias")
    return "/api/apps/" + urllib.parse.quote(ref, safe="/")


def update_app(
    client: EverestClient, ref: str, descriptor: Mapping[str, Any], *, dry_run: bool
) -> tuple[str, list[str]]:
    """(action, diff): 'unchanged', 'updated' or 'would update'."""
    path = app_path(ref)
    try:
        current = client.get_json(path)
    except EverestNotFound:
        raise EverestNotFound(
            f"--update {ref}: no such application on {client.url}; import the exported zip "
            "in the web UI first, then update it with --update"
        ) from None
    if not isinstance(current, dict):
        raise EverestError(f"Everest answered GET {path} with no application object")
    ours = {key: descriptor[key] for key in SYNCED_KEYS if key in descriptor}
    theirs = {key: current[key] for key in SYNCED_KEYS if key in current}
    diff = diff_lines(theirs, ours)
    if not diff:
        return "unchanged", diff
    if not dry_run:
        client.send_json("PUT", path, {**current, **ours})
    return ("would update" if dry_run else "updated"), diff
