"""An Everest REST stand-in on 127.0.0.1: auth, apps, files, and our resource endpoint.

What it imitates and where that comes from:
- ``POST /api/auth/access_token`` {username, password, label, lifetime?} ->
  {access_token}; ``Authorization: Bearer`` or cookie ``access_token``
  (shared/facts/everest.md "REST API"; the public python client, everest.py
  get_token/Session, a copy in vvvol/sptp).
- ``GET /api/apps``, ``GET|PUT|DELETE /api/apps/<id or owner/alias>``
  (facts "Apps"; python client getAppDesc).
- ``POST /api/files/temp`` multipart ``file`` (vvvol/sptp everest.py
  __uploadFile) or ``sendfile`` (the-templet-project/templet lib/everest.hpp
  upload) -> 200 {uri, filename, length} (shared/facts/everest.md "Jobs as public
  clients see them"; sptp and templet read only ``uri``). ``uri`` is a path under
  /api/files/ or, with ``upload_uris="url"``, a full URL: sptp's getFile fetches
  anything not under /api/files/ as a URL, so both shapes travel as input
  values. ``GET /api/files/...`` serves what was stored, with the token (sptp
  getFile uses the session for /api/files/ paths).
- The resource endpoint is NOT Everest's (its resource API is not public): it is
  everbake's own documented protocol (README.md "From image to Everest", Publishing), at a
  configurable path, so an operator can put it behind a proxy that speaks to
  their Everest. GET <ep>/<name> -> 200 config | 404; POST <ep> {config} -> 201
  | 409 when the name exists; PATCH <ep>/<name> (JSON merge patch, RFC 7396)
  -> 200 config.

Routes live in a table, so other tests add endpoints (jobs) with ``route()``.
Faults are queued with ``fail(method, pattern, status, times)``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from tests.fakes.loopback_http import LoopbackHttpServer, QuietHandler

DEFAULT_RESOURCE_ENDPOINT = "/api/everbake/resources"


@dataclass
class Call:
    """One request as a route handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str]
    user: str | None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise Reply(400, {"error": "request body is not JSON"}) from None  # guess: text


@dataclass
class Reply(Exception):
    """What a handler returns (or raises): status, JSON-able body or raw bytes."""

    status: int = 200
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Route = tuple[str, re.Pattern[str], Callable[[Call], Reply], bool]


def error(status: int, message: str) -> Reply:
    # guess: Everest's error body is not public; {"error": ...} like most JSON APIs.
    return Reply(status, {"error": message})


class EverestFake(LoopbackHttpServer):
    def __init__(
        self,
        users: dict[str, str] | None = None,
        resource_endpoint: str = DEFAULT_RESOURCE_ENDPOINT,
        upload_uris: str = "path",
    ) -> None:
        self.upload_uris = upload_uris  # "path" (/api/files/...) or "url" (full URL)
        self.users = dict(users or {"alice": "alice-password"})
        self.tokens: dict[str, str] = {}  # token -> user
        self.logins: list[dict[str, Any]] = []  # login bodies, password removed
        self.apps: dict[str, dict[str, Any]] = {}  # 24-hex id -> app (with owner, alias)
        self.files: dict[str, bytes] = {}  # path under the server -> content
        self.resources: dict[str, dict[str, Any]] = {}  # name -> config
        self.resource_endpoint = resource_endpoint.rstrip("/")
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request
        self.stamps: list[float] = []  # time.monotonic() of every request, as calls
        self.faulted: list[int] = []  # indices into calls answered by a queued fault
        self.bodies: list[bytes] = []  # every request body, for secret scans
        self.headers_seen: list[dict[str, str]] = []
        self.lock = threading.RLock()
        self._faults: list[list[Any]] = []  # [method, pattern, status, remaining, headers]
        self._routes: list[Route] = []
        self.route("POST", r"/api/auth/access_token", self._access_token, auth=False)
        self.route("GET", r"/api/apps", self._list_apps)
        app = r"/api/apps/(?P<app>[0-9a-f]{24}|[^/]+/[^/]+)"
        self.route("GET", app, self._get_app)
        self.route("PUT", app, self._put_app)
        self.route("DELETE", app, self._delete_app)
        self.route("POST", r"/api/files/temp", self._upload)
        self.route("GET", r"/api/files/(?P<rest>.+)", self._get_file)
        ep = re.escape(self.resource_endpoint)
        self.route("GET", ep, self._list_resources)
        self.route("POST", ep, self._create_resource)
        self.route("GET", ep + r"/(?P<name>[^/]+)", self._get_resource)
        self.route("PATCH", ep + r"/(?P<name>[^/]+)", self._patch_resource)
        super().__init__(self._handler())

    # ------------------------------------------------------------ test API

    def route(
        self, method: str, pattern: str, handler: Callable[[Call], Reply], *, auth: bool = True
    ) -> None:
        """Serve ``method`` on paths fully matching ``pattern``; later routes win."""
        self._routes.insert(0, (method, re.compile(pattern), handler, auth))

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (0: drop the
        connection), with ``headers`` (e.g. Retry-After, RFC 9110 10.2.3)."""
        with self.lock:
            self._faults.append([method, re.compile(pattern), status, times, headers or {}])

    def issue_token(self, user: str = "alice") -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = user
        return token

    def add_app(self, app: dict[str, Any], owner: str = "alice", alias: str = "") -> str:
        app_id = secrets.token_hex(12)  # ids are 24-hex strings (facts "Resources")
        with self.lock:
            self.apps[app_id] = {**app, "id": app_id, "owner": owner, "alias": alias}
        return app_id

    def count(self, method: str, pattern: str = r".*") -> int:
        rx = re.compile(pattern)
        return sum(1 for m, p in self.calls if m == method and rx.fullmatch(p))

    @property
    def resource_path(self) -> str:
        return self.resource_endpoint

    # ------------------------------------------------------------- routes

    def _access_token(self, call: Call) -> Reply:
        body = call.json()
        if not isinstance(body, dict) or not {"username", "password", "label"} <= set(body):
            return error(400, "username, password and label are required")  # guess: text
        with self.lock:
            self.logins.append({k: v for k, v in body.items() if k != "password"})
            if self.users.get(body["username"]) != body["password"]:
                return error(401, "Invalid username or password")  # guess: text
        return Reply(200, {"access_token": self.issue_token(body["username"])})

    def _find_app(self, key: str) -> str | None:
        if key in self.apps:
            return key
        owner, _, alias = key.partition("/")
        for app_id, app in self.apps.items():
            if alias and app["owner"] == owner and app["alias"] == alias:
                return app_id
        return None

    def _list_apps(self, call: Call) -> Reply:
        with self.lock:
            return Reply(200, list(self.apps.values()))

    def _get_app(self, call: Call) -> Reply:
        with self.lock:
            found = self._find_app(call.match["app"])
            return Reply(200, self.apps[found]) if found else error(404, "Application not found")

    def _put_app(self, call: Call) -> Reply:
        body = call.json()
        if not isinstance(body, dict):
            return error(400, "an application description (JSON object) is expected")
        with self.lock:
            found = self._find_app(call.match["app"])
            if not found:
                return error(404, "Application not found")
            if call.user != self.apps[found]["owner"]:
                return error(403, "Only the owner can change the application")  # guess: text
            kept = {k: self.apps[found][k] for k in ("id", "owner", "alias")}
            self.apps[found] = {**body, **kept}
            return Reply(200, self.apps[found])

    def _delete_app(self, call: Call) -> Reply:
        with self.lock:
            found = self._find_app(call.match["app"])
            if not found:
                return error(404, "Application not found")
            del self.apps[found]
        return Reply(204)

    def _upload(self, call: Call) -> Reply:
        ctype = call.headers.get("content-type", "")
        parts = parse_multipart(call.body, ctype)
        field = next((f for f in ("file", "sendfile") if f in parts), None)
        if field is None:
            return error(400, "multipart field 'file' is required")  # guess: text
        name, content = parts[field]
        path = f"/api/files/temp/{secrets.token_hex(8)}/{urllib.parse.quote(name or 'file')}"
        with self.lock:
            self.files[path] = content
        uri = self.url + path if self.upload_uris == "url" else path
        return Reply(200, {"uri": uri, "filename": name, "length": len(content)})

    def file_at(self, uri: str) -> bytes | None:
        """What a file URI of this server (a path or a full URL) holds."""
        path = urllib.parse.urlsplit(uri).path if "://" in uri else uri
        with self.lock:
            return self.files.get(path)

    def _get_file(self, call: Call) -> Reply:
        with self.lock:
            content = self.files.get(call.path)
        if content is None:
            return error(404, "File not found")
        return Reply(200, content, "application/octet-stream")

    # Our own resource protocol (README.md "From image to Everest", Publishing).
    def _list_resources(self, call: Call) -> Reply:
        with self.lock:
            return Reply(200, list(self.resources.values()))

    def _get_resource(self, call: Call) -> Reply:
        with self.lock:
            found = self.resources.get(call.match["name"])
        return Reply(200, found) if found else error(404, "resource not found")

    def _create_resource(self, call: Call) -> Reply:
        body = call.json()
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return error(400, "the resource config has no name")
        with self.lock:
            if name in self.resources:
                return error(409, f"resource {name} already exists")
            self.resources[name] = body
        return Reply(201, body)

    def _patch_resource(self, call: Call) -> Reply:
        if "merge-patch+json" not in call.headers.get("content-type", ""):
            return error(415, "use Content-Type: application/merge-patch+json")
        patch = call.json()
        with self.lock:
            current = self.resources.get(call.match["name"])
            if current is None:
                return error(404, "resource not found")
            self.resources[call.match["name"]] = merge_patch(current, patch)
            return Reply(200, self.resources[call.match["name"]])

    # ------------------------------------------------------------ plumbing

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query = raw_path.partition("?")
        with self.lock:
            self.calls.append((method, path))
            self.stamps.append(time.monotonic())
            self.bodies.append(body)
            self.headers_seen.append(headers)
            for fault in self._faults:
                if fault[0] == method and fault[1].fullmatch(path) and fault[3] > 0:
                    fault[3] -= 1
                    self.faulted.append(len(self.calls) - 1)
                    if fault[2] == 0:
                        raise ConnectionAbortedError
                    reply = error(fault[2], "Internal Server Error")  # guess: text
                    reply.headers.update(fault[4])
                    return reply
        for route_method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(path)
            if not match or route_method != method:
                continue
            user = self._user(headers)
            if auth and user is None:
                return error(401, "Unauthorized")  # guess: text
            call = Call(method, path, urllib.parse.parse_qs(query), headers, body, match, user)
            try:
                return handler(call)
            except Reply as reply:
                return reply
        return error(404, "Not Found")

    def _user(self, headers: dict[str, str]) -> str | None:
        given = headers.get("authorization", "")
        token = given[len("Bearer ") :] if given.startswith("Bearer ") else ""
        if not token and "cookie" in headers:
            morsel = SimpleCookie(headers["cookie"]).get("access_token")
            token = morsel.value if morsel else ""
        with self.lock:
            return self.tokens.get(token)

    def _handler(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    reply = fake._dispatch(self.command, self.path, headers, body)
                except ConnectionAbortedError:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(reply.body, bytes):
                    raw = reply.body
                else:
                    raw = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                if raw or reply.status != 204:
                    self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(raw)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str, bytes]]:
    """{field: (filename, content)} of a multipart/form-data body (RFC 7578)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not found:
        return {}
    delimiter = b"--" + found.group(1).encode()
    fields: dict[str, tuple[str, bytes]] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (
                filename.group(1) if filename else "",
                content[:-2] if content.endswith(b"\r\n") else content,
            )
    return fields
