"""Sweeps of 100, 1,000 and 10,000 variations against the project's Everest fake on
loopback (tests/fakes/everest.py + everest_jobs.py, in a process of its own): wall
time, the sweep process's CPU per job, bytes it wrote per job, requests per job,
the most requests the fake saw in any one second against the budget, and peak
RSS; then the growth of CPU and bytes per job from the smallest to the largest.
Targets: both grow no more than 1.3x; the observed rate never above the budget.

CPU and bytes are the sweep's own, from sweep.start() to the end of the report
(the interpreter's start-up and imports, a fixed ~0.4 s, are left out).

Each job of the fake is SUBMITTED ~1 s, RUNNING ~2 s, then DONE with the outputs
the exported app maps (results.zip, status.txt, stdout, stderr, version.txt,
stats.json, stats.csv, metrics.json). At a modest budget (5/s), 10,000 jobs need
at least 10,000 submits = 2,000 s, so the default budget here is 250/s: high
enough to finish in minutes on loopback, low enough to be the limit the sweep
works against (the observed maximum is printed beside it).

Usage: python benchmarks/bench_sweep.py [--sizes 100,1000,10000] [--rate 250]
       [--parallel 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SERVER = r"""
import json, sys, threading
sys.path.insert(0, sys.argv[1])
from everbake.everest.app import application
from everbake.spec import load_spec
from tests.fakes.everest import EverestFake, Reply
from tests.fakes import everest_jobs as fj

def plan(inputs, n):
    script = fj.Script(running_steps=2, queued_steps=1, final_status="optimal: objective 42")
    script.metrics = {"objective": inputs["params"]["x"] * 1.5, "gap": 0.0}
    return script

with EverestFake() as fake:
    jobs = fj.EverestJobs(fake, plan=plan, step_seconds=1.0)
    app = application(load_spec("optimization"), {"image_name": "everbake-optimization"})
    fake.add_app(app, alias="transport")
    fake.route("GET", r"/bench/stamps", lambda call: Reply(200, fake.stamps), auth=False)
    print(json.dumps({"url": fake.url, "token": fake.issue_token()}), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
"""


def child(url: str, token: str, n: int, rate: float, parallel: int, where: Path) -> None:
    """One sweep in this process; prints its own CPU, RSS and bytes written."""
    from everbake.everest import sweep
    from everbake.everest.client import EverestClient
    from everbake.everest.jobsapi import JobsApi
    from everbake.everest.liveview import SweepView

    grid = where / "grid.json"
    grid.write_text(
        json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": list(range(n))}}})
    )
    os.environ.setdefault("EVERBAKE_POLL_SECONDS", "1")
    os.environ.setdefault("EVERBAKE_POLL_MAX_SECONDS", "5")
    # From here on: the sweep's own cost, not the interpreter's start-up and imports.
    before, io_before = resource.getrusage(resource.RUSAGE_SELF), _io()
    with open(where / "view.log", "w") as log:
        state = sweep.start("alice/transport", grid, where / "runs", parallel, 0)
        outcome = sweep.run(
            JobsApi(EverestClient(url, token)), state, SweepView(log, tty=False), rate=rate
        )
    usage, io = resource.getrusage(resource.RUSAGE_SELF), _io()
    print(json.dumps({
        "cpu": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime,
        "rss_kb": usage.ru_maxrss,
        "wchar": io["wchar"] - io_before["wchar"],
        "write_bytes": io["write_bytes"] - io_before["write_bytes"],
        "done": outcome.counts.get("DONE", 0),
    }))  # fmt: skip


def _io() -> dict[str, int]:
    """This process's I/O counters: wchar is every byte passed to write()."""
    text = Path("/proc/self/io").read_text()
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def most_in_a_second(stamps: list[float]) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while stamps[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--parallel", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # JSON: a token may start with "-"
    args = parser.parse_args()
    if args.child:
        c = json.loads(args.child)
        child(c["url"], c["token"], c["n"], args.rate, c["parallel"], Path(c["where"]))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"budget {args.rate:g} requests/s, at most {args.parallel} jobs at once; "
          "fake: SUBMITTED 1 s, RUNNING 2 s, DONE; 8 outputs per job")  # fmt: skip
    print(f"{'jobs':>6} {'wall s':>8} {'CPU ms/job':>11} {'KB written/job':>15} "
          f"{'req/job':>8} {'max req/s':>10} {'peak RSS MB':>12}")  # fmt: skip
    results = []
    for n in sizes:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(REPO)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        assert server.stdout is not None and server.stdin is not None
        site = json.loads(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            start = time.perf_counter()
            run = subprocess.run(
                [sys.executable, __file__, "--rate", str(args.rate), "--child=" + json.dumps(
                    {**site, "n": n, "where": tmp, "parallel": args.parallel})],
                capture_output=True, text=True, cwd=REPO,
            )  # fmt: skip
            wall = time.perf_counter() - start
            if run.returncode:
                server.kill()
                raise SystemExit(f"sweep of {n} failed:\n{run.stderr[-3000:]}")
            got = json.loads(run.stdout.strip().splitlines()[-1])
        import urllib.request

        with urllib.request.urlopen(site["url"] + "/bench/stamps") as answer:
            stamps = json.loads(answer.read())[:-1]  # not this request
        server.stdin.close()
        server.wait(timeout=30)
        row = {
            "n": n,
            "wall": wall,
            "cpu_ms": got["cpu"] / n * 1000,
            "kb": got["wchar"] / n / 1000,
            "req": len(stamps) / n,
            "max_rate": most_in_a_second(stamps),
            "rss_mb": got["rss_kb"] / 1000,
            "done": got["done"],
        }
        results.append(row)
        print(f"{n:>6} {wall:>8.1f} {row['cpu_ms']:>11.2f} {row['kb']:>15.1f} "
              f"{row['req']:>8.2f} {row['max_rate']:>10} {row['rss_mb']:>12.1f}"
              + ("" if row["done"] == n else f"  ONLY {row['done']} DONE"), flush=True)  # fmt: skip
    first, last = results[0], results[-1]
    cpu_growth, kb_growth = last["cpu_ms"] / first["cpu_ms"], last["kb"] / first["kb"]
    worst = max(r["max_rate"] for r in results)
    print(f"growth {first['n']} -> {last['n']}: CPU/job {cpu_growth:.2f}x, bytes/job "
          f"{kb_growth:.2f}x (target <= 1.3x); most requests in one second {worst} "
          f"(budget {args.rate:g})")  # fmt: skip
    ok = cpu_growth <= 1.3 and kb_growth <= 1.3 and worst <= args.rate
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
