"""The sweep's live view stays a few lines at 10,000 jobs."""

from __future__ import annotations

import io
import time

from everbake.everest.liveview import SweepView, ViewState
from everbake.everest.sweepstate import Open


def running(n: int) -> dict[str, Open]:
    now = time.time()
    return {
        f"{i:024x}": Open(
            i,
            i,
            0,
            f"sweep-x-{i}-0",
            f"{i:024x}",
            "submitted",
            "RUNNING",
            now - i,
            now - i,
            now - i,
            None,
            label=f"x={i}",
        )
        for i in range(n)
    }


def big() -> ViewState:
    vs = ViewState(total=10_000, outcomes={"DONE": 7000, "FAILED": 12, "preempted": 3})
    vs.running = running(200).values()
    for i in range(40):
        vs.failures.append((f"x={i}", "FAILED", f"failed: exit 3 ({i})"))
    vs.requests, vs.rate, vs.files, vs.bytes, vs.elapsed = 90_000, 5, 56_000, 12_000_000, 3600
    return vs


def test_on_a_terminal_it_is_counts_traffic_the_slowest_and_the_last_failures():
    out = io.StringIO()
    SweepView(out, tty=True).show(big(), force=True)
    lines = out.getvalue().splitlines()
    assert len(lines) <= 14
    assert lines[0].startswith("sweep: 7015/10000 ended (DONE 7000, FAILED 12, preempted 3)")
    assert "200 running, 2785 to go" in lines[0]
    assert "requests 90000 (budget 5/s)" in lines[1] and "56000 files, 12.0 MB" in lines[1]
    slowest = lines[lines.index("slowest running:") + 1 :][:5]
    assert [line.split()[0] for line in slowest] == ["x=199", "x=198", "x=197", "x=196", "x=195"]
    assert lines[-1].strip() == "x=39: FAILED  failed: exit 3 (39)"  # the newest failure last


def test_in_a_log_it_is_one_progress_line_now_and_then():
    out = io.StringIO()
    view = SweepView(out, tty=False)
    vs = big()
    view.show(vs)
    first = out.getvalue().splitlines()
    assert len(first) == 6  # the failures not said yet (the last five), then progress
    assert first[-1].startswith("sweep: 7015/10000 ended")
    for _ in range(50):
        view.show(vs)
    assert len(out.getvalue().splitlines()) == 6  # not one per call, nor one per job
    vs.failures.append(("x=40", "no outputs", ""))
    vs.outcomes["no outputs"] = 1
    view.show(vs)
    assert out.getvalue().splitlines()[6] == "x=40: no outputs"  # each failure as it comes
    view.show(vs, force=True)
    assert len(out.getvalue().splitlines()) == 8
