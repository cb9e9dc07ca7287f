"""The preemption watcher against a loopback GCE-style metadata server."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))

from everest_runtime.preemption import PreemptionWatcher  # noqa: E402

from tests.fakes.agent import free_port  # noqa: E402


class Metadata:
    """instance/preempted with ETags and wait_for_change long-polls; 403 without the header."""

    def __init__(self) -> None:
        self.value = "FALSE"
        self.etag = 1
        self.requests: list[str] = []
        self.cond = threading.Condition()
        metadata = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                with metadata.cond:
                    metadata.requests.append(self.path)
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._reply(403, "missing Metadata-Flavor")
                if url.path != "/computeMetadata/v1/instance/preempted":
                    return self._reply(404, "not found")
                with metadata.cond:
                    if query.get("wait_for_change") == ["true"]:
                        last = query.get("last_etag", [""])[0]
                        metadata.cond.wait_for(lambda: str(metadata.etag) != last, timeout=5)
                    value, etag = metadata.value, metadata.etag
                self._reply(200, value, etag)

            def _reply(self, code: int, body: str, etag: int | None = None) -> None:
                data = body.encode()
                self.send_response(code)
                if etag is not None:
                    self.send_header("ETag", str(etag))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/computeMetadata/v1"

    def preempt(self) -> None:
        with self.cond:
            self.value, self.etag = "TRUE", self.etag + 1
            self.cond.notify_all()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_callback_fires_once_when_preempted():
    metadata = Metadata()
    called = []
    try:
        watcher = PreemptionWatcher(lambda: called.append(1), base_url=metadata.base_url).start()
        assert wait_until(lambda: any("wait_for_change=true" in r for r in metadata.requests))
        assert called == []
        metadata.preempt()
        assert wait_until(lambda: called == [1])
        assert wait_until(lambda: not watcher.running)
        assert watcher.preempted
        assert "last_etag=1" in metadata.requests[-1]
    finally:
        metadata.close()


def test_no_metadata_server_stops_quietly():
    lines: list[str] = []
    watcher = PreemptionWatcher(
        lambda: lines.append("called"), base_url=f"http://127.0.0.1:{free_port()}", log=lines.append
    ).start()
    assert wait_until(lambda: not watcher.running)
    assert not watcher.preempted
    assert len(lines) == 1 and lines[0].startswith("preemption watch off")


def test_not_gce_404_stops_quietly():
    metadata = Metadata()
    try:
        watcher = PreemptionWatcher(lambda: None, base_url=metadata.base_url + "/elsewhere").start()
        assert wait_until(lambda: not watcher.running)
        assert not watcher.preempted
    finally:
        metadata.close()
