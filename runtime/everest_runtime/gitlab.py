"""A small GitLab REST v4 client for fetching a model's source.

The token travels only in the PRIVATE-TOKEN header: never in a URL, a message
or a log line. Transient failures (429, 5xx, resets, truncated bodies) are
retried with backoff; 401/403/404 fail at once saying which.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import redact
from .errors import FetchError, RetryableFetchError
from .stderrlog import prefixed

CHUNK = 1 << 20
MAX_RETRY_AFTER = 300.0
PROGRESS_EVERY = 2.0  # seconds between progress lines on long downloads


_log = prefixed("everest-bootstrap")


class GitLab:
    def __init__(
        self,
        base_url: str,
        project: str,
        token: str | None,
        retries: int = 6,
        retry_delay: float = 1.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        base = redact.url_credentials(base_url)[0].rstrip("/")  # the token is a header
        if not base.startswith(("http://", "https://")):
            raise FetchError(f"--gitlab-url {base_url!r} must start with https:// (or http://)")
        self.api = base if base.endswith("/api/v4") else base + "/api/v4"
        self.host = urllib.parse.urlsplit(base).netloc
        self.project = str(project)
        self.project_url = f"{self.api}/projects/{urllib.parse.quote(self.project, safe='')}"
        self.token = token or None
        self.retries = max(0, retries)
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.sleep = sleep

    # -- API -------------------------------------------------------------------

    def commit(self, ref: str) -> dict[str, Any]:
        """Commit metadata for a SHA, tag or branch (id, short_id, title, committed_date)."""
        path = "/repository/commits/" + urllib.parse.quote(ref, safe="")
        body = self._retrying(path, {}, None, f"version {ref!r}")
        try:
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, dict) or not data.get("id"):
                raise ValueError("no commit id")
        except (ValueError, UnicodeDecodeError) as exc:
            raise FetchError(f"GitLab {self.host}: unexpected commit metadata ({exc})") from None
        return data

    ARCHIVE = "/repository/archive.tar.gz"

    def archive(self, sha: str, dest: Path) -> None:
        """The repository at `sha` as a .tar.gz (rate limited by GitLab)."""
        self._retrying(self.ARCHIVE, {"sha": sha}, dest, f"version {sha!r}")

    def archive_url(self, sha: str) -> str:
        """Where archive() gets it from (for messages; no token in it)."""
        return self._url(self.ARCHIVE, {"sha": sha})

    def artifact(self, ref: str, job: str, path: str, dest: Path) -> None:
        """One file from the latest successful `job` artifacts for `ref`."""
        what = f"artifact {path!r} of job {job!r} for {ref!r}"
        self._retrying(self._artifact_path(ref, path), {"job": job}, dest, what)

    def artifact_url(self, ref: str, job: str, path: str) -> str:
        return self._url(self._artifact_path(ref, path), {"job": job})

    @staticmethod
    def _artifact_path(ref: str, path: str) -> str:
        ref_part = urllib.parse.quote(ref, safe="")
        return f"/jobs/artifacts/{ref_part}/raw/" + urllib.parse.quote(path.lstrip("/"), safe="/")

    # -- transport ---------------------------------------------------------------

    def _retrying(self, path: str, query: dict[str, str], dest: Path | None, what: str):
        attempt = 0
        while True:
            try:
                return self._once(path, query, dest, what)
            except RetryableFetchError as exc:
                if attempt >= self.retries:
                    raise FetchError(f"{exc}; gave up after {attempt + 1} attempts") from None
                delay = exc.retry_after
                if delay is None:
                    delay = self.retry_delay * (2**attempt) * random.uniform(0.5, 1.0)
                delay = min(max(delay, 0.0), MAX_RETRY_AFTER)
                _log(f"{exc}; retrying in {delay:.1f} s ({attempt + 1}/{self.retries})")
                self.sleep(delay)
                attempt += 1

    def _url(self, path: str, query: dict[str, str]) -> str:
        return self.project_url + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _once(self, path: str, query: dict[str, str], dest: Path | None, what: str):
        url = self._url(path, query)
        request = urllib.request.Request(url, headers={"User-Agent": "everest-runtime"})
        if self.token:
            request.add_unredirected_header("PRIVATE-TOKEN", self.token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                if dest is None:
                    body = response.read()
                    got = len(body)
                else:
                    got = 0
                    body = b""
                    shown = time.monotonic()
                    total = f" of {expected / 1e6:.1f}" if expected else ""
                    with open(dest, "wb") as out:
                        while True:
                            chunk = response.read(CHUNK)
                            if not chunk:
                                break
                            out.write(chunk)
                            got += len(chunk)
                            if time.monotonic() - shown >= PROGRESS_EVERY:
                                shown = time.monotonic()
                                _log(f"{what}: {got / 1e6:.1f}{total} MB downloaded")
                if expected is not None and got != expected:
                    raise RetryableFetchError(
                        f"GitLab {self.host}: {what}: body truncated ({got} of {expected} bytes)"
                    )
                return body
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, what) from None
        except http.client.IncompleteRead as exc:
            raise RetryableFetchError(
                f"GitLab {self.host}: {what}: body truncated ({len(exc.partial)} bytes read)"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, socket.timeout) or isinstance(reason, socket.timeout):
                reason = f"no answer in {self.timeout:g} s"
            raise RetryableFetchError(f"GitLab {self.host}: {what}: {reason}") from None

    def _http_error(self, exc: urllib.error.HTTPError, what: str) -> FetchError:
        code = exc.code
        where = f"GitLab {self.host}"
        if code in (401, 403):
            if not self.token:
                return FetchError(
                    f"{where}: HTTP {code}, token missing: project {self.project!r} needs a "
                    "token (set EVEREST_GITLAB_TOKEN, --token-file or --token-metadata-key)"
                )
            return FetchError(
                f"{where}: HTTP {code}, token refused for project {self.project!r}: check that "
                "it is valid, not expired, and has read_api/read_repository access"
            )
        if code == 404:
            return FetchError(
                f"{where}: HTTP 404, project {self.project!r} or {what} not found "
                "(check --project and --ref)"
            )
        if code == 429 or code >= 500:
            return RetryableFetchError(
                f"{where}: {what}: HTTP {code}", retry_after=_retry_after(exc.headers)
            )
        return FetchError(f"{where}: {what}: HTTP {code} {exc.reason}")


def _retry_after(headers) -> float | None:
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
