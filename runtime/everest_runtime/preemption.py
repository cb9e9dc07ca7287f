"""Watch GCE's `instance/preempted` metadata and call back once when it turns TRUE.

The systemd SIGTERM is what actually stops the task; this only tells the runner
earlier, so the final status can say "preempted" instead of "terminated".
Without a metadata server (Yandex, a laptop, a test) it stops quietly.

It speaks HTTP/1.0 over a plain socket rather than through urllib: importing
urllib.request (http.client, email, ssl) costs more CPU than hours of long
polls, and the watch runs beside every task. HTTP/1.0 also means the server
ends each answer by closing, never with chunked encoding.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from everest_runtime.metadata import HEADERS, api_url

WAIT_SECONDS = 60  # server-side long-poll limit per request


class PreemptionWatcher:
    def __init__(
        self,
        callback: Callable[[], None],
        base_url: str | None = None,
        retry_delay: float = 5.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.callback = callback
        self.base_url = api_url(base_url or "")
        self.retry_delay = retry_delay
        self.preempted = False
        self._log = log or (lambda line: None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="everest-preempt", daemon=True)

    def start(self) -> PreemptionWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _get(self, etag: str | None) -> tuple[str, str | None]:
        host, port, path = _split(self.base_url)
        path += "/instance/preempted"
        if etag is not None:
            path += f"?wait_for_change=true&timeout_sec={WAIT_SECONDS}&last_etag={etag}"
        code, headers, body = _http_get(host, port, path, WAIT_SECONDS + 10)
        if code != 200:
            raise HTTPStatusError(code)
        return body[:64].decode("ascii", "replace").strip(), headers.get("etag")

    def _run(self) -> None:
        etag = None
        answered = False
        while not self._stop.is_set():
            try:
                value, etag = self._get(etag)
                answered = True
            except (OSError, ValueError) as error:
                code = getattr(error, "code", None)
                server_error = isinstance(code, int) and code >= 500
                if (not answered and not server_error) or (code is not None and not server_error):
                    # No metadata server, or not GCE (404/403): nothing to watch.
                    self._log(f"preemption watch off: {error}")
                    return
                self._stop.wait(self.retry_delay)
                continue
            if value.upper() == "TRUE" and not self._stop.is_set():
                self.preempted = True
                try:
                    self.callback()
                except Exception as error:
                    self._log(f"preemption callback failed: {error!r}")
                return


class HTTPStatusError(OSError):
    """The server answered, but not 200."""

    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code


def _split(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an http:// URL (the metadata server is never https)."""
    if not url.startswith("http://"):
        raise ValueError(f"metadata URL {url!r} must start with http://")
    authority, _, path = url[len("http://") :].partition("/")
    host, colon, port = authority.rpartition(":")
    if not colon or not port.isdigit():  # no port (or a bare IPv6 address)
        host, port = authority, "80"
    return host.strip("[]"), int(port), "/" + path


def _http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, dict, bytes]:
    """One HTTP/1.0 GET: (status code, lower-cased headers, body)."""
    lines = [f"GET {path} HTTP/1.0", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in HEADERS.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    with socket.create_connection((host, port), timeout) as sock:
        sock.sendall(request)
        data = b""
        while len(data) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer from {host}:{port}: {status[:40]!r}")
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, body


def watch_preemption(
    callback: Callable[[], None], base_url: str | None = None
) -> PreemptionWatcher:
    """Start watching in a daemon thread; returns the watcher (stop() to end)."""
    return PreemptionWatcher(callback, base_url).start()
