"""A request budget shared by every call a sweep makes (submits, polls, downloads):
at most ``rate`` requests in any one second, and none at all while the server has
asked us to wait (a Retry-After on a 429 or 503).

The rule is a sliding window: a request may start when fewer than ``rate`` requests
started in the last second, and never sooner than 1/rate after the one before (no
bursts). Thread-safe: the download workers and the main loop draw from one budget.
Memory is the last ``rate`` start times, whatever the sweep's size.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from everbake.errors import EverbakeError

DEFAULT_RATE = 5.0
# A Retry-After longer than this is honoured only this long at a time; the sweep
# says so, and a server still refusing after it gets asked again politely.
MAX_HOLD_SECONDS = 300.0
WINDOW = 1.0


def check_rate(rate: float, flag: str = "--max-requests-per-second") -> float:
    if not math.isfinite(rate) or rate <= 0:
        raise EverbakeError(f"{flag} {rate}: give a number of requests per second above 0")
    return float(rate)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a delay in seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RequestBudget:
    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = check_rate(rate)
        self._clock, self._sleep = clock, sleep
        self._starts: deque[float] = deque(maxlen=max(1, math.floor(self.rate)))
        self._hold_until = 0.0
        self._lock = threading.Lock()
        self.granted = 0  # requests started through this budget
        self.held_seconds = 0.0  # total time the server asked us to wait

    def _wait_needed(self, now: float) -> float:
        wait = self._hold_until - now
        if self._starts:
            wait = max(wait, self._starts[-1] + 1.0 / self.rate - now)
            if len(self._starts) == self._starts.maxlen:
                wait = max(wait, self._starts[0] + WINDOW - now)
        return wait

    def acquire(self) -> None:
        """Block until one more request may start, and count it as started."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._starts.append(now)
                    self.granted += 1
                    return
            self._sleep(min(wait, 1.0))

    def hold(self, seconds: float) -> float:
        """The server asked for a pause (Retry-After): no request starts for
        ``seconds`` (at most MAX_HOLD_SECONDS). Returns the pause applied."""
        seconds = min(max(0.0, seconds), MAX_HOLD_SECONDS)
        with self._lock:
            until = self._clock() + seconds
            if until > self._hold_until:
                self.held_seconds += until - max(self._hold_until, self._clock())
                self._hold_until = until
        return seconds

    # The client's pacer hook (everbake/everest/client.py: Pacer).
    def before_request(self) -> None:
        self.acquire()

    def server_asked_to_wait(self, retry_after: str) -> None:
        seconds = retry_after_seconds(retry_after)
        if seconds is not None:
            self.hold(seconds)
