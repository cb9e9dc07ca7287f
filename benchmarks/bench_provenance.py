"""What provenance.json adds to a task (target: under 20 ms), two ways, same run:

1. In process: the provenance work itself (read image.json and a packages.json of
   a real image's size, hash params.json and a data archive, write the file at the
   start and again at the end), median of N, against the median wall time of a
   whole task, to show it as a share of one.
2. End to end: everest-run-task on the same instant model N times with provenance
   and N times with it replaced by a no-op (the same runner, patched in the
   interpreter that runs it), interleaved; the difference of the medians.

Usage: python benchmarks/bench_provenance.py [--runs 15] [--data-mb 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime"
sys.path.insert(0, str(RUNTIME))

from everest_runtime import provenance  # noqa: E402

# A real bookworm image holds ~250 Debian packages and ~40 Python distributions;
# double that.
DEBIAN = {f"lib-package-{i}": f"{i}.{i % 7}.{i % 3}-1+deb12u1" for i in range(500)}
PYTHON = {f"dist-{i}": f"{i % 9}.{i % 11}.{i % 5}" for i in range(80)}
IMAGE = {
    "image": "optimization-0123456789ab",
    "spec": "optimization",
    "family": "optimization",
    "provider": "local",
    "fingerprints": {"base": "b" * 64, "image": "a" * 64},
    "agent_content": "none",
    "solvers": {"highs": {"install": "pip", "package": "dist-3", "version": "3.3.3"}},
}
# Both ways start the same: this wrapper, with or without the no-op put in first.
WRAPPER = (
    "import sys, runpy\n"
    "if sys.argv[1] == 'off':\n"
    "    from everest_runtime import provenance as p\n"
    "    class Off:\n"
    "        def __init__(self, *a, **k): pass\n"
    "        def image_line(self): return ''\n"
    "        def write(self, *a, **k): pass\n"
    "    p.Provenance = Off\n"
    "sys.argv[:2] = ['everest_runtime']\n"
    "runpy.run_module('everest_runtime', run_name='__main__')\n"
)
MODEL = "print('##status done')\n"


def lay_out(top: Path, data_mb: int) -> tuple[Path, Path, Path]:
    image_dir = top / "etc-everest"
    image_dir.mkdir()
    (image_dir / "image.json").write_text(json.dumps(IMAGE))
    packages = {"format": 1, "debian": DEBIAN, "python": PYTHON}
    (image_dir / "packages.json").write_text(json.dumps(packages, indent=2))
    model = top / "model"
    model.mkdir()
    (model / "m.py").write_text(MODEL)
    (model / "everest.toml").write_text('[model]\ncommand = ["python", "m.py"]\n')
    data = top / "data.zip"
    with zipfile.ZipFile(data, "w") as zf:  # stored: the runner unpacks it too
        zf.writestr("input.bin", os.urandom(data_mb << 20))
    return image_dir, model, data


def in_process(image_dir: Path, data: Path, task: Path, runs: int) -> list[float]:
    os.environ[provenance.IMAGE_DIR_ENV] = str(image_dir)
    params = task / "params.json"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        record = provenance.Provenance({"ref": "local", "source": "local /m"}, params, data, [])
        record.write(task)
        record.write(task, 0)
        times.append(time.perf_counter() - start)
    return times


def run_task(model: Path, task: Path, env: dict[str, str], noop: bool) -> float:
    how = "off" if noop else "on"
    argv = [sys.executable, "-c", WRAPPER, how, "run-task", "--model", str(model)]
    argv.append("--no-preemption-watch")
    start = time.perf_counter()
    subprocess.run(argv, cwd=task, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--data-mb", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        image_dir, model, data = lay_out(top, args.data_mb)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EVEREST_", "EVERBAKE_"))}
        env.update(PYTHONPATH=str(RUNTIME), EVEREST_PREEMPTION_WATCH="0")
        env[provenance.IMAGE_DIR_ENV] = str(image_dir)
        with_it, without = [], []
        for i in range(args.runs):
            for noop, bucket in ((False, with_it), (True, without)):
                task = top / f"task-{i}-{int(noop)}"
                task.mkdir()
                (task / "params.json").write_text('{"n": 1}')
                os.link(data, task / "data.zip")
                bucket.append(run_task(model, task, env, noop))
        work = top / "task-inproc"
        work.mkdir()
        (work / "params.json").write_text('{"n": 1}')
        inproc = in_process(image_dir, data, work, args.runs)
        size = (work / provenance.FILE).stat().st_size
    med_with, med_without = statistics.median(with_it), statistics.median(without)
    med_in = statistics.median(inproc)
    print(
        f"provenance.json: {size / 1e3:.1f} kB; data archive {args.data_mb} MB hashed; "
        f"{len(DEBIAN)} Debian + {len(PYTHON)} Python packages; {args.runs} runs each"
    )
    print(
        f"1. in process: median {med_in * 1e3:.1f} ms (max {max(inproc) * 1e3:.1f} ms) = "
        f"{med_in / med_with:.3f} of a task's wall time ({med_with * 1e3:.0f} ms)"
    )
    diff = (med_with - med_without) * 1e3
    print(
        f"2. end to end: task median {med_with * 1e3:.0f} ms with provenance, "
        f"{med_without * 1e3:.0f} ms without: difference {diff:+.1f} ms, "
        f"ratio {med_with / med_without:.3f}"
    )


if __name__ == "__main__":
    main()
