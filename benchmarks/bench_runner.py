"""everest-run-task overhead against running the same model directly (baseline,
same run, same interpreter).

1. Wall time for a model that exits at once (fixed cost of the runner).
2. Wall time for a model that computes for ~2 s (relative cost).
3. CPU the runner itself uses at steady state (status forwarding, the sampler at
   1 s, the reaper, and with "+watch" the preemption watch long-polling a loopback
   metadata fake), as a share of one core: the runner's extra CPU for a model
   sleeping 8 s minus that for one sleeping 2 s, over the 6 s between them, so
   start-up and output collection (fixed costs) cancel out.

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
    "sleep2": "import time\nfor i in range(2):\n    print('##status', i, flush=True)\n"
    "    time.sleep(1)\n",
    "sleep8": "import time\nfor i in range(8):\n    print('##status', i, flush=True)\n"
    "    time.sleep(1)\n",
}


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
        for name in [*MODELS, "sleep2+watch", "sleep8+watch"]:
            runs = args.runs if "sleep" not in name else max(2, args.runs // 2)
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

        def extra_cpu(row) -> float:
            _, direct, runner = row
            return statistics.median(c for _, c in runner) - statistics.median(c for _, c in direct)

        fixed = extra_cpu(rows[0])
        print(f"  runner's own CPU, fixed (start-up, outputs):    {fixed * 1000:6.1f} ms")
        by_name = {row[0]: row for row in rows}
        for label, short, long in (("no watch", "sleep2", "sleep8"),
                                   ("with watch", "sleep2+watch", "sleep8+watch")):  # fmt: skip
            extra = extra_cpu(by_name[long]) - extra_cpu(by_name[short])
            wall = statistics.median(w for w, _ in by_name[long][2]) - statistics.median(
                w for w, _ in by_name[short][2]
            )
            print(f"  steady state, {label:10s}: {extra * 1000:6.1f} ms of runner CPU over "
                  f"{wall:.1f} s = {100 * extra / wall:.2f}% of a core (target < 1%)")  # fmt: skip
        meta.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
