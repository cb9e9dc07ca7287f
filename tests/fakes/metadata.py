"""A GCE-style VM metadata server on 127.0.0.1: instance attributes under
/computeMetadata/v1/instance/attributes/<key>, answered only with the header
Metadata-Flavor: Google (403 otherwise, 404 for unknown keys), as GCE and
Yandex Cloud do; and /computeMetadata/v1/instance/preempted with GCE's long poll
(?wait_for_change=true&last_etag=E waits until the value's ETag differs)."""

from __future__ import annotations

import threading
import time
import urllib.parse

from tests.fakes.loopback_http import LoopbackHttpServer, QuietHandler

PREFIX = "/computeMetadata/v1/instance/attributes/"
PREEMPTED = "/computeMetadata/v1/instance/preempted"


class MetadataFake(LoopbackHttpServer):
    def __init__(self, attributes: dict[str, str] | None = None):
        self.attributes = dict(attributes or {})
        self._preempted = "FALSE"
        self._changed = threading.Condition()
        self.requests: list[tuple[str, str | None]] = []  # (path, Metadata-Flavor)
        super().__init__(self._handler())

    def preempt(self) -> None:
        """Turn instance/preempted TRUE, waking long polls."""
        with self._changed:
            self._preempted = "TRUE"
            self._changed.notify_all()

    def _preempted_value(self, query: dict) -> str:
        with self._changed:
            if query.get("wait_for_change") == ["true"]:
                etag = query.get("last_etag", [""])[0]
                deadline = time.monotonic() + float(query.get("timeout_sec", ["60"])[0])
                while self._preempted == etag and time.monotonic() < deadline:
                    self._changed.wait(deadline - time.monotonic())
            return self._preempted

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                flavor = self.headers.get("Metadata-Flavor")
                path, _, query = self.path.partition("?")
                fake.requests.append((path, flavor))
                if flavor != "Google":
                    return self._reply(403, b"Missing Metadata-Flavor:Google header.")
                if path == PREEMPTED:
                    value = fake._preempted_value(urllib.parse.parse_qs(query))
                    return self._reply(200, value.encode(), etag=value)
                key = urllib.parse.unquote(path[len(PREFIX) :]) if path.startswith(PREFIX) else None
                if key is None or key not in fake.attributes:
                    return self._reply(404, b"not found")
                self._reply(200, fake.attributes[key].encode())

            def _reply(self, code: int, body: bytes, etag: str | None = None) -> None:
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                if etag is not None:
                    self.send_header("ETag", etag)
                self.send_header("Content-Type", "application/text")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
