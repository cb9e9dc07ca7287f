"""A GCE-style VM metadata server on 127.0.0.1: instance attributes under
/computeMetadata/v1/instance/attributes/<key>, answered only with the header
Metadata-Flavor: Google (403 otherwise, 404 for unknown keys), as GCE and
Yandex Cloud do."""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/computeMetadata/v1/instance/attributes/"


class MetadataFake:
    def __init__(self, attributes: dict[str, str] | None = None):
        self.attributes = dict(attributes or {})
        self.requests: list[tuple[str, str | None]] = []  # (path, Metadata-Flavor)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> MetadataFake:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                flavor = self.headers.get("Metadata-Flavor")
                path = self.path.partition("?")[0]
                fake.requests.append((path, flavor))
                if flavor != "Google":
                    return self._reply(403, b"Missing Metadata-Flavor:Google header.")
                key = urllib.parse.unquote(path[len(PREFIX) :]) if path.startswith(PREFIX) else None
                if key is None or key not in fake.attributes:
                    return self._reply(404, b"not found")
                self._reply(200, fake.attributes[key].encode())

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", "application/text")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
