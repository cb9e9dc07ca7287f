"""The request budget on a simulated clock: windows, spacing, Retry-After."""

from __future__ import annotations

import email.utils
import itertools

import pytest

from everbake.errors import EverbakeError
from everbake.everest.budget import MAX_HOLD_SECONDS, RequestBudget, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def most_in_a_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


@pytest.mark.parametrize("rate", [1, 2.5, 5, 40])
def test_no_second_holds_more_requests_than_the_budget(rate):
    clock = Clock()
    budget = RequestBudget(rate, clock.now, clock.sleep)
    grants = []
    for _ in range(int(rate * 6)):
        budget.acquire()
        grants.append(clock.t)
    assert most_in_a_second(grants) <= rate
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= 1 / rate - 1e-9  # evenly spaced, no burst
    assert budget.granted == len(grants)


def test_retry_after_pauses_every_request_and_is_capped():
    clock = Clock()
    budget = RequestBudget(10, clock.now, clock.sleep)
    budget.acquire()
    budget.server_asked_to_wait("3")
    budget.acquire()
    assert clock.t >= 1003.0
    assert budget.hold(10_000) == MAX_HOLD_SECONDS


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(email.utils.formatdate(1_000_030, usegmt=True), now=1_000_000) == 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_a_rate_that_is_not_positive_is_one_clear_error(rate):
    with pytest.raises(EverbakeError, match=r"--max-requests-per-second .*: give a number"):
        RequestBudget(rate)
