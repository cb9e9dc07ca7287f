"""A small Everest REST client on urllib: JSON calls, uploads, downloads, retries.

Public API (shared/facts/everest.md): ``POST /api/auth/access_token``,
``/api/apps``, ``/api/jobs``, ``POST /api/files/temp`` (multipart ``file``) ->
``{uri}``. The token goes only into the ``Authorization: Bearer`` header: never
into a URL, a message or a log line (messages are scrubbed of it anyway).

Errors are one line each: 401 says how to log in, 404 names what was missing,
409 repeats the server's reason, 5xx and unreachable servers say where and how
often it was tried. Idempotent calls (GET, PUT, DELETE, and uploads, whose
temporary files the server discards) are retried with backoff on 5xx, 429 and
connection errors; a POST that creates something is sent once.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from everbake.errors import EverbakeError
from everbake.ui import say

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 4  # attempts after the first one
DEFAULT_BACKOFF = 0.5  # seconds before the first retry, doubling, at most MAX_BACKOFF
MAX_BACKOFF = 10.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
LOGIN_FIX = "run `invoke everest-login` or set EVEREST_TOKEN"
URL_FIX = "set `everest.url` in invoke.yaml or EVEREST_URL (e.g. https://everest.distcomp.org)"
_CHUNK = 1 << 16


class EverestError(EverbakeError):
    """Everest answered with an error or could not be reached; one line."""


class EverestAuthError(EverestError):
    """No token, or the server refused it (401)."""


class EverestNotFound(EverestError):
    """404: what the call named does not exist."""


class EverestConflict(EverestError):
    """409: the server refused a change that clashes with its current state."""


class EverestUnavailable(EverestError):
    """Worth trying again later: a 5xx or 429 that outlasted the client's own retries
    (``status``), or a server it could not reach (``status`` None). Callers that
    poll (the jobs' watch) ride these out; other errors change nothing if resent."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def base_url(url: str) -> str:
    """``url`` checked and normalised: scheme and host, no trailing ``/`` or ``/api``."""
    text = (url or "").strip().rstrip("/")
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        shown = text or "(empty)"
        raise EverestError(f"Everest URL {shown!r} is not an http(s) URL; {URL_FIX}")
    if parsed.username or parsed.password:
        raise EverestError("the Everest URL must not hold a user or password; " + LOGIN_FIX)
    if text.endswith("/api"):
        text = text[: -len("/api")]
    return text


def resolve_url(configured: str = "", env: Mapping[str, str] | None = None) -> str:
    """EVEREST_URL, else the invoke config's ``everest.url``; '' when neither is set."""
    env = os.environ if env is None else env
    return env.get("EVEREST_URL", "").strip() or (configured or "").strip()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise EverestError(
                f"Everest answered {self.status} with a body that is not JSON "
                f"({self.body[:60]!r}); check that the Everest URL points at the server"
            ) from None


class _Multipart:
    """A multipart/form-data body with one file field, read from disk as it is sent."""

    def __init__(self, field: str, path: Path, filename: str) -> None:
        self.boundary = "everbake-" + secrets.token_hex(16)
        quoted = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        self._head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._path = path
        self.length = len(self._head) + path.stat().st_size + len(self._tail)

    def open(self) -> _Chain:
        """A fresh reader over the whole body (one per attempt)."""
        return _Chain([self._head, self._path, self._tail])


class _Chain:
    """read() over bytes and files in turn; what http.client sends block by block."""

    def __init__(self, parts: list[bytes | Path]) -> None:
        self._parts = list(parts)
        self._file: IO[bytes] | None = None

    def read(self, size: int = -1) -> bytes:
        while self._parts or self._file:
            if self._file is None:
                part = self._parts.pop(0)
                if isinstance(part, bytes):
                    if part:
                        return part
                    continue
                self._file = open(part, "rb")  # noqa: SIM115 - closed when drained
            chunk = self._file.read(size if size > 0 else _CHUNK)
            if chunk:
                return chunk
            self._file.close()
            self._file = None
        return b""

    def close(self) -> None:
        if self._file:
            self._file.close()


class Pacer(Protocol):
    """Paces every HTTP attempt (a sweep's request budget, everest/budget.py)."""

    def before_request(self) -> None: ...

    def server_asked_to_wait(self, retry_after: str) -> None: ...


class EverestClient:
    """Calls to one Everest server. ``token`` may be None for the login call only.
    ``pacer``, when given, is asked before every attempt (retries included) and told
    of every Retry-After the server sends."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
    ) -> None:
        self.url = base_url(url)
        self.pacer = pacer
        self._token = token
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._sleep = sleep

    # ------------------------------------------------------------------ calls

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()

    def send_json(
        self, method: str, path: str, body: Any, *, content_type: str = "", auth: bool = True
    ) -> Any:
        data = json.dumps(body).encode()
        return self.request(
            method, path, data=data, content_type=content_type or "application/json", auth=auth
        ).json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def upload(self, path: Path, filename: str | None = None) -> str:
        """POST /api/files/temp (multipart ``file``) -> the file's ``uri`` for job inputs."""
        if not path.is_file():
            raise EverestError(f"{path}: no such file to upload")
        body = _Multipart("file", path, filename or path.name)
        answer = self.request(
            "POST",
            "/api/files/temp",
            data=body,
            content_type=f"multipart/form-data; boundary={body.boundary}",
            idempotent=True,  # a repeated upload only leaves a spare temporary file
        ).json()
        uri = answer.get("uri") if isinstance(answer, dict) else None
        if not isinstance(uri, str) or not uri:
            raise EverestError("Everest answered POST /api/files/temp without a 'uri'")
        return uri

    def download(self, uri: str, dest: Path) -> Path:
        """GET a file into ``dest``, through a temporary file beside it renamed when
        complete. ``uri`` is a path on the server (``/api/files/...``), fetched with
        the token, or a full URL (sptp everest.py getFile): with the token only when
        it points at this Everest, never to another host."""
        parsed = urllib.parse.urlsplit(uri)
        base, path, auth = "", uri, True
        if parsed.scheme:
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise EverestError(f"output {uri!r} is no path on Everest nor an http(s) URL")
            path = urllib.parse.urlunsplit(("", "", parsed.path or "/", parsed.query, ""))
            if _origin(uri) != _origin(self.url):
                base, auth = f"{parsed.scheme}://{parsed.netloc}", False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            self.request("GET", path, sink=tmp, auth=auth, base=base)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    # --------------------------------------------------------------- plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | _Multipart | None = None,
        content_type: str = "",
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        sink: Path | None = None,
        auth: bool = True,
        base: str = "",
    ) -> Response:
        """One call, retried when safe; an HTTP error becomes one EverestError line.
        ``base`` sends it to another host than Everest (then never with the token)."""
        if not path.startswith("/"):
            path = "/" + path
        if base and auth:
            raise AssertionError("the token goes to the Everest server only")
        if auth and not self._token:
            raise EverestAuthError(f"no Everest token for {self.url}; {LOGIN_FIX}")
        retry = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        what = f"{method} {base}{path.split('?')[0]}"
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            if self.pacer is not None:
                self.pacer.before_request()
            try:
                return self._once(method, path, data, content_type, headers, sink, auth, base)
            except urllib.error.HTTPError as exc:
                status, text, after = exc.code, _error_text(exc), exc.headers.get("Retry-After")
                exc.close()
                if after and self.pacer is not None:
                    self.pacer.server_asked_to_wait(after)
                if status not in RETRY_STATUSES or attempt == attempts:
                    raise self._http_error(what, status, text, attempt) from None
                delay = _retry_after(after) or self._delay(attempt)
                say(
                    f"everest: {what} answered {status}; retry {attempt}/{self.retries} in "
                    f"{delay:.1f} s"
                )
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt == attempts:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise EverestUnavailable(
                        f"cannot reach Everest at {self.url} ({self._scrub(str(reason))}) for "
                        f"{what}{tries}; check the URL and the network ({URL_FIX})"
                    ) from None
                delay = self._delay(attempt)
                say(
                    f"everest: {what} failed ({self._scrub(str(reason))}); retry "
                    f"{attempt}/{self.retries} in {delay:.1f} s"
                )
            self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _once(
        self,
        method: str,
        path: str,
        data: bytes | _Multipart | None,
        content_type: str,
        headers: Mapping[str, str] | None,
        sink: Path | None,
        auth: bool,
        base: str,
    ) -> Response:
        head = {"Accept": "application/json", **(headers or {})}
        if content_type:
            head["Content-Type"] = content_type
        if auth and self._token:
            head["Authorization"] = f"Bearer {self._token}"
        body: Any = data
        if isinstance(data, _Multipart):
            head["Content-Length"] = str(data.length)
            body = data.open()
        target = (base or self.url) + path
        request = urllib.request.Request(target, data=body, headers=head, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                if sink is not None:
                    with open(sink, "wb") as out:
                        while chunk := answer.read(_CHUNK):
                            out.write(chunk)
                    return Response(answer.status, b"", dict(answer.headers))
                return Response(answer.status, answer.read(), dict(answer.headers))
        finally:
            if isinstance(body, _Chain):
                body.close()

    def _delay(self, attempt: int) -> float:
        return float(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF))

    def _http_error(self, what: str, status: int, text: str, attempt: int) -> EverestError:
        said = f": {self._scrub(text)}" if text else ""
        if status == 401:
            return EverestAuthError(
                f"Everest at {self.url} refused the token (401) for {what}; {LOGIN_FIX}"
            )
        if status == 403:
            return EverestAuthError(
                f"Everest at {self.url} forbids {what} (403){said}; "
                "log in as a user with access to it"
            )
        if status == 404:
            return EverestNotFound(f"Everest at {self.url}: {what} not found (404){said}")
        if status == 409:
            return EverestConflict(f"Everest at {self.url}: {what} refused (409 conflict){said}")
        if status >= 500 or status == 429:
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            return EverestUnavailable(
                f"Everest at {self.url} answered {status} for {what}{tries}{said}; try again later",
                status,
            )
        return EverestError(f"Everest at {self.url} answered {status} for {what}{said}")

    def _scrub(self, text: str) -> str:
        """Never let the token into a message, whatever the server echoed."""
        return text.replace(self._token, "<token>") if self._token else text


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The first line of an error body, or its JSON 'error'/'message' field, short."""
    try:
        raw = exc.read(2048).decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str):
                raw = data[key]
                break
    line = raw.strip().splitlines()[0] if raw.strip() else ""
    return line[:200]


def _origin(url: str) -> tuple[str, str]:
    parsed = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, f"{parsed.hostname}:{parsed.port or default}"


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), MAX_BACKOFF) if value else None
    except ValueError:
        return None
