"""everest-run-task overhead against running the same model directly (baseline,
same run, same interpreter).

1. Wall time for a model that exits at once (fixed cost of the runner).
2. Wall time for a model that computes for ~2 s (relative cost).
3. CPU the runner itself uses at steady state (status forwarding, the sampler at
   1 s, the reaper, and with "+watch" the preemption watch long-polling a loopback
   metadata fake), as a share of one core, while the model sleeps: the runner
   process's own utime+stime (/proc/<pid>/stat, children excluded) read 2 s after
   launch and again 10 s later, so start-up and output collection are outside the
   window and the model's CPU is never subtracted. Baseline, same run: the same
   reading for `sleep` run directly under a bare `python -c` parent that waits.

Usage: python benchmarks/bench_runner.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.metadata import MetadataFake  # noqa: E402

MODELS = {
    "instant": "print('##status done')\n",
    "compute": (
        "import time\nend = time.process_time() + 2.0\nn = 0\n"
        "while time.process_time() < end:\n    n += 1\nprint('##status', n)\n"
    ),
    "sleep": "import time\nfor i in range(14):\n    print('##status', i, flush=True)\n"
    "    time.sleep(1)\n",
}
WINDOW = (2.0, 12.0)  # seconds after launch between the two readings


def own_cpu(pid: int) -> float:
    """utime+stime of the process itself (not its children), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steady_share(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """The process's own CPU per second of wall time inside WINDOW."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    readings = []
    for at in WINDOW:
        time.sleep(max(0.0, start + at - time.monotonic()))
        readings.append((time.monotonic(), own_cpu(proc.pid)))
    if proc.wait() != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    (t0, c0), (t1, c1) = readings
    return (c1 - c0) / (t1 - t0)


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and everything it waited for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVEREST_")}
    env["PYTHONPATH"] = str(REPO / "runtime")
    env["EVEREST_PREEMPTION_WATCH"] = "0"  # no metadata server here; never leave loopback
    try:
        for name, code in MODELS.items():
            model = work / name
            model.mkdir()
            (model / "m.py").write_text(code)
            (model / "everest.toml").write_text(
                '[model]\ncommand = ["python", "m.py"]\nresults = []\n'
            )
        meta = MetadataFake().__enter__()
        watched = dict(env, EVEREST_PREEMPTION_WATCH="1", EVEREST_METADATA_URL=meta.url)
        rows = []
        for name in ("instant", "compute"):
            runs = args.runs
            direct, runner = [], []
            for i in range(runs):
                task = work / f"task-{name}-{i}"
                task.mkdir()
                model = work / name.split("+")[0]
                direct.append(measure([sys.executable, str(model / "m.py")], task, env))
                cmd = [sys.executable, "-m", "everest_runtime", "run-task", "--model",
                       str(model)]  # fmt: skip
                runner.append(measure(cmd, task, watched if "watch" in name else env))
            rows.append((name, direct, runner))
        print(f"everest-run-task vs the model run directly (median of {args.runs}):")
        for name, direct, runner in rows:
            dw = statistics.median(w for w, _ in direct)
            rw = statistics.median(w for w, _ in runner)
            print(f"  {name:11s} wall: direct {dw * 1000:8.1f} ms  runner {rw * 1000:8.1f} ms  "
                  f"overhead {(rw - dw) * 1000:7.1f} ms  ratio {rw / dw:.3f}x")  # fmt: skip

        fixed = statistics.median(c for _, c in rows[0][2]) - statistics.median(
            c for _, c in rows[0][1]
        )
        print(f"  runner's own CPU, fixed (start-up, outputs):    {fixed * 1000:6.1f} ms")
        model = work / "sleep"
        run_task = [sys.executable, "-m", "everest_runtime", "run-task", "--model", str(model)]
        parent = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])",
                  sys.executable, str(model / "m.py")]  # fmt: skip
        shares: dict[str, list[float]] = {"baseline": [], "no watch": [], "with watch": []}
        for i in range(max(3, args.runs // 2)):
            for label, cmd, case_env in (("baseline", parent, env), ("no watch", run_task, env),
                                         ("with watch", run_task, watched)):  # fmt: skip
                task = work / f"task-steady-{label.replace(' ', '-')}-{i}"
                task.mkdir()
                shares[label].append(steady_share(cmd, task, case_env))
        count = len(shares["baseline"])
        print(f"steady state while the model sleeps: the parent's own CPU from "
              f"{WINDOW[0]:g} s to {WINDOW[1]:g} s (median of {count}):")  # fmt: skip
        base = statistics.median(shares["baseline"])
        for label, values in shares.items():
            share = statistics.median(values)
            extra = "" if label == "baseline" else f"   target < 1%: {share < 0.01}"
            print(f"  {label:10s} {100 * share:6.2f}% of a core "
                  f"(per-run: {', '.join(f'{100 * v:.2f}' for v in values)}){extra}")  # fmt: skip
        print(f"  (baseline: a bare python parent waiting on the model, {100 * base:.2f}%)")
        meta.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
