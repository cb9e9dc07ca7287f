"""Watch GCE's `instance/preempted` metadata and call back once when it turns TRUE.

The systemd SIGTERM is what actually stops the task; this only tells the runner
earlier, so the final status can say "preempted" instead of "terminated".
Without a metadata server (Yandex, a laptop, a test) it stops quietly.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from everest_runtime.metadata import HEADERS, api_url, direct_opener

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
        self._opener = direct_opener()
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
        url = f"{self.base_url}/instance/preempted"
        if etag is not None:
            url += f"?wait_for_change=true&timeout_sec={WAIT_SECONDS}&last_etag={etag}"
        request = urllib.request.Request(url, headers=HEADERS)
        with self._opener.open(request, timeout=WAIT_SECONDS + 10) as response:
            body = response.read(64).decode("ascii", "replace").strip()
            return body, response.headers.get("ETag")

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


def watch_preemption(
    callback: Callable[[], None], base_url: str | None = None
) -> PreemptionWatcher:
    """Start watching in a daemon thread; returns the watcher (stop() to end)."""
    return PreemptionWatcher(callback, base_url).start()
