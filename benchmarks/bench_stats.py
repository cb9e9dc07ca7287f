"""CPU cost of the statistics sampler at 1 s sampling, as % of one core.

Baseline (same run, same process tree): one `ps -e -o pid,ppid,rss,times`
per sample, the obvious shell way. Run: python benchmarks/bench_stats.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from everest_runtime import stats

TREE = (  # a root with 20 sleeping children
    "import os, time\n"
    "for _ in range(20):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(60); os._exit(0)\n"
    "time.sleep(60)\n"
)


def main() -> None:
    root = subprocess.Popen([sys.executable, "-c", TREE])
    time.sleep(0.5)
    try:
        processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
        samples = 200
        sampler = stats.Sampler(root.pid, interval=3600)
        start = time.thread_time()
        for _ in range(samples):
            sampler.sample()
        ours = (time.thread_time() - start) / samples
        tree = sampler.summary()["peak_processes"]

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(samples // 10):
            subprocess.run(["ps", "-e", "-o", "pid,ppid,rss,times"], capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ps = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / (samples // 10)

        live = stats.Sampler(root.pid, interval=1.0).start()
        time.sleep(5.0)
        summary = live.stop()
        real = summary["sampler_cpu_seconds"] / summary["wall_seconds"]
    finally:
        root.kill()
        root.wait()
    print(f"/proc holds {processes} processes; the sampled tree has {tree}")
    print(f"{'method':<36} {'CPU per sample':>15} {'% of a core at 1 s':>20}")
    print(f"{'baseline: ps -e per sample':<36} {ps * 1e3:>12.3f} ms {ps * 100:>19.3f}%")
    print(f"{'Sampler.sample()':<36} {ours * 1e3:>12.3f} ms {ours * 100:>19.3f}%")
    print(f"{'Sampler, 5 s live at interval=1.0':<36} {'':>15} {real * 100:>19.3f}%")
    print(f"ratio ours/baseline: {ours / ps:.3f}x   target < 1% of a core: {ours * 100 < 1}")


if __name__ == "__main__":
    main()
