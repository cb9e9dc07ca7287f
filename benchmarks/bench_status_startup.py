"""everest-status start-up against a bare interpreter (same interpreter, same
environment, same run): the console script with no agent configured (status to
stderr) and with a loopback agent that reads and closes cleanly. Target: within
2x `python -c pass`.

Runs alternate between the commands so that load on the machine hits each alike;
wall time and CPU time (user+system of the process) are medians.

Usage: python benchmarks/bench_status_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))


def sink() -> int:
    """A loopback agent that reads each session to its end, then closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                while conn.recv(65536):
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return int(server.getsockname()[1])


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run, output discarded."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ])  # fmt: skip
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{argv} exited with status {status}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    python = sys.executable
    script = shutil.which("everest-status", path=str(Path(python).parent))
    if script is None:
        raise SystemExit(f"no everest-status beside {python}: pip install -e runtime")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVEREST_")}
    agent_env = dict(env, EVEREST_AGENT_ADDRESS="127.0.0.1", EVEREST_AGENT_PORT=str(sink()),
                     EVEREST_AGENT_TASK_ID="bench")  # fmt: skip
    cases = {
        "python -c pass": ([python, "-c", "pass"], env),
        "everest-status, no agent": ([python, script, "step 3 of 10"], env),
        "everest-status, agent": ([python, script, "step 3 of 10"], agent_env),
    }
    for argv, case_env in cases.values():
        measure(argv, case_env)  # warm the page cache
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (argv, case_env) in cases.items():
            results[name].append(measure(argv, case_env))
    base_wall = statistics.median(w for w, _ in results["python -c pass"])
    base_cpu = statistics.median(c for _, c in results["python -c pass"])
    print(f"everest-status start-up, median of {args.runs} alternating runs ({python}):")
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {name:26s} wall {wall * 1000:7.1f} ms ({wall / base_wall:4.2f}x)   "
              f"CPU {cpu * 1000:7.1f} ms ({cpu / base_cpu:4.2f}x)")  # fmt: skip
    print("  target: everest-status within 2x python -c pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
