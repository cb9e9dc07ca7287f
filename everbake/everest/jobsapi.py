"""The jobs half of Everest's REST API, on top of the client (auth, retries, errors).

Endpoints (shared/facts/everest.md; vvvol/sptp everest.py, a copy of the official
python-api; the-templet-project/templet lib/everest.hpp):
  POST /api/files/temp            multipart `file` -> {uri}
  POST /api/apps/<id or owner/alias>  {name, inputs, resources?} -> 201 {id, state}
                                  (older servers 200: pyomo-everest at aadf9c8, templet)
  GET  /api/jobs, GET /api/jobs/<id>, POST /api/jobs/<id>/cancel, GET /api/jobs/<id>/log
  an output: /api/files/... on the server, or a full URL (sptp getFile)
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from everbake.everest.client import EverestClient, EverestError, EverestUnavailable


def _quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="/")


class JobsApi:
    def __init__(self, client: EverestClient):
        self.client = client

    def upload(self, path: Path) -> str:
        return self.client.upload(path)

    def submit(self, app: str, body: dict[str, Any]) -> dict[str, Any]:
        # A POST that creates a job is sent once (the client never repeats it); any 2xx
        # with {id, state} is the job (201, or 200 from older servers).
        answer = self.client.send_json("POST", f"/api/apps/{_quote(app)}", body)
        if not isinstance(answer, dict):
            raise EverestError(f"Everest answered the job submission to {app} without a job")
        return answer

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.client.get_json(f"/api/jobs/{_quote(job_id)}")
        if not isinstance(answer, dict):
            raise EverestError(f"Everest answered GET /api/jobs/{job_id} without a job")
        return answer

    def jobs(self) -> list[dict[str, Any]]:
        answer = self.client.get_json("/api/jobs")
        return [doc for doc in answer if isinstance(doc, dict)] if isinstance(answer, list) else []

    def find_by_name(self, name: str) -> list[dict[str, Any]]:
        """The jobs named ``name`` (GET /api/jobs; whether it pages is not public)."""
        return [doc for doc in self.jobs() if doc.get("name") == name and doc.get("id")]

    def cancel(self, job_id: str) -> None:
        self.client.request("POST", f"/api/jobs/{_quote(job_id)}/cancel")

    def log(self, job_id: str) -> str:
        answer = self.client.request("GET", f"/api/jobs/{_quote(job_id)}/log")
        return answer.body.decode("utf-8", "replace")

    def download(self, uri: str, dest: Path) -> int:
        self.client.download(uri, dest)
        return dest.stat().st_size


def is_transient(exc: Exception) -> bool:
    """Worth polling through: a 5xx or 429 after the client's own retries, or a
    server it could not reach (the client's EverestUnavailable). Not a refused
    token, a missing job, a conflict nor another 4xx: sending those again changes
    nothing."""
    return isinstance(exc, EverestUnavailable)
