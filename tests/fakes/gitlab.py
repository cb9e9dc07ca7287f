"""A GitLab REST v4 stand-in on 127.0.0.1 for the bootstrap tests.

Serves the three endpoints the bootstrap uses, with GitLab's status codes:
  GET /api/v4/projects/:id/repository/commits/:ref
  GET /api/v4/projects/:id/repository/archive.tar.gz?sha=
  GET /api/v4/projects/:id/jobs/artifacts/:ref/raw/*path?job=
`:id` is a numeric id or a URL-encoded path. Faults are queued per endpoint kind
("commit", "archive", "artifact") and consumed one per request:
  ("status", 500) | ("status", 429, retry_after) | ("truncate",) | ("reset",)
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
import urllib.parse
from collections import defaultdict, deque

from tests.fakes.loopback_http import LoopbackHttpServer, QuietHandler


def tar_gz(files: dict[str, bytes | str], root: str = "model-abc") -> bytes:
    """A .tar.gz like GitLab's archive: every file under one top-level directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(f"{root}/{name}" if root else name)
            info.size = len(raw)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


class Project:
    def __init__(self, pid: int, path: str):
        self.id = pid
        self.path = path
        self.commits: dict[str, dict] = {}  # ref (sha, tag, branch) -> commit JSON
        self.archives: dict[str, bytes] = {}  # full sha -> .tar.gz
        self.artifacts: dict[tuple[str, str, str], bytes] = {}  # (ref, job, path) -> bytes

    def add_commit(self, sha: str, files: dict, refs=(), title="Add model", archive=None):
        commit = {
            "id": sha,
            "short_id": sha[:8],
            "title": title,
            "committed_date": "2026-11-20T10:00:00.000+00:00",
        }
        for ref in (sha, sha[:8], *refs):
            self.commits[ref] = commit
        self.archives[sha] = archive if archive is not None else tar_gz(files, f"model-{sha}")
        return commit


class GitLabFake(LoopbackHttpServer):
    def __init__(self, token: str | None = None):
        self.token = token
        self.projects: list[Project] = []
        self.faults: dict[str, deque] = defaultdict(deque)
        self.requests: list[tuple[str, str, bool]] = []  # (kind, path, token ok)
        self.headers_seen: list[str] = []
        self.delay = 0.0  # seconds before each archive/artifact body, to widen races
        self.forbidden: set[str] = set()  # valid tokens without access: 403
        super().__init__(self._handler())

    def project(self, pid: int = 42, path: str = "group/model") -> Project:
        project = Project(pid, path)
        self.projects.append(project)
        return project

    def count(self, kind: str) -> int:
        return sum(1 for k, _, _ in self.requests if k == kind)

    def _find(self, ident: str) -> Project | None:
        for p in self.projects:
            if ident in (str(p.id), p.path):
                return p
        return None

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                raw_path, _, query = self.path.partition("?")
                parts = raw_path.split("/")
                args = urllib.parse.parse_qs(query)
                fake.headers_seen.append(str(self.headers))
                if parts[:4] != ["", "api", "v4", "projects"] or len(parts) < 6:
                    return self._send(404, {"message": "404 Not Found"})
                project = fake._find(urllib.parse.unquote(parts[4]))
                rest = parts[5:]
                kind = {"repository": "commit", "jobs": "artifact"}.get(rest[0], "?")
                if rest[:2] == ["repository", "archive.tar.gz"]:
                    kind = "archive"
                given = self.headers.get("PRIVATE-TOKEN")
                if given in fake.forbidden:
                    fake.requests.append((kind, self.path, False))
                    return self._send(403, {"message": "403 Forbidden"})
                token_ok = fake.token is None or given == fake.token
                fake.requests.append((kind, self.path, token_ok))
                if not token_ok:
                    return self._send(401, {"message": "401 Unauthorized"})
                if project is None:
                    return self._send(404, {"message": "404 Project Not Found"})
                fault = fake.faults[kind].popleft() if fake.faults[kind] else ("none",)
                if fault[0] == "status":
                    headers = {"Retry-After": str(fault[2])} if len(fault) > 2 else {}
                    return self._send(fault[1], {"message": "fault"}, headers)
                body = self._body(project, kind, rest, args)
                if body is None:
                    return self._send(404, {"message": "404 Not Found"})
                if fault[0] == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    return
                if fault[0] == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(0.05)
                    self.close_connection = True
                    return
                if kind != "commit":
                    time.sleep(fake.delay)
                self._raw(200, body, "application/octet-stream")

            def _body(self, project: Project, kind: str, rest: list[str], args) -> bytes | None:
                if kind == "commit" and len(rest) == 3 and rest[1] == "commits":
                    commit = project.commits.get(urllib.parse.unquote(rest[2]))
                    return json.dumps(commit).encode() if commit else None
                if kind == "archive":
                    return project.archives.get(args.get("sha", [""])[0])
                if kind == "artifact" and len(rest) >= 5 and rest[3] == "raw":
                    ref = urllib.parse.unquote(rest[2])
                    path = urllib.parse.unquote("/".join(rest[4:]))
                    return project.artifacts.get((ref, args.get("job", [""])[0], path))
                return None

            def _send(self, code: int, obj, headers=None) -> None:
                self._raw(code, json.dumps(obj).encode(), "application/json", headers)

            def _raw(self, code: int, body: bytes, ctype: str, headers=None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler
