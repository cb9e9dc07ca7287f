"""SIGTERM-to-exit time of everest-run-task: how much of the ~30 s a cloud gives
between its SIGTERM and power-off is left for the agent to upload the outputs.

Cases: a model that traps SIGTERM (writes a partial result and exits at once)
and one that ignores it (killed after the grace period), each with the agent up
(a loopback fake that reads) and down (its port refuses). Baseline, same run:
the same model under a bare Python parent that forwards SIGTERM and sends
SIGKILL after the same grace, the least any runner could take. Printed: the
medians, the runner's extra time over the baseline, and the room left of 30 s.

Usage: python benchmarks/bench_sigterm.py [--runs 3] [--grace 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.agent import FaultyAgent, free_port  # noqa: E402

CLOUD_NOTICE = 30.0  # GCE and Yandex: SIGTERM ~30 s before power-off
MODELS = {
    "traps": (
        "import signal, sys, time\n"
        "def stop(*a):\n"
        "    open('partial.json', 'w').write('{}')\n"
        "    print('##status stopped', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "for i in range(200):\n"
        "    open(f'out-{i}.csv', 'w').write('x' * 10000)\n"
        "print('ready', flush=True)\n"
        "while True:\n    time.sleep(0.05)\n"
    ),
    "ignores": (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True:\n    time.sleep(0.05)\n"
    ),
}
# The bare parent: start the model, forward SIGTERM, SIGKILL after the grace.
BASELINE = """
import signal, subprocess, sys, time
grace = float(sys.argv[1])
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
print(proc.stdout.readline().decode().strip(), flush=True)
got = []
signal.signal(signal.SIGTERM, lambda *a: (got.append(time.monotonic()), proc.send_signal(15)))
while proc.poll() is None:
    if got and time.monotonic() - got[0] >= grace:
        proc.kill()
    time.sleep(0.01)
"""


def one_run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds from SIGTERM to the process's exit."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    while b"ready" not in proc.stdout.readline():
        pass
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.stdout.read()
    proc.wait()
    return time.monotonic() - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--grace", type=float, default=20.0)
    args = parser.parse_args()
    python = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVEREST_")}
    base_env["PYTHONPATH"] = str(REPO / "runtime")
    rows = []
    with tempfile.TemporaryDirectory() as scratch, FaultyAgent() as agent:
        root = Path(scratch)
        for name, script in MODELS.items():
            model = root / f"model-{name}"
            model.mkdir()
            (model / "m.py").write_text(script)
            (model / "everest.toml").write_text(
                '[model]\ncommand = ["python", "m.py"]\nresults = ["*.csv", "*.json"]\n'
            )
            for agent_state, port in (("up", agent.port), ("down", free_port())):
                env = dict(base_env, EVEREST_AGENT_PORT=str(port), EVEREST_AGENT_TASK_ID="t-1",
                           EVEREST_PREEMPTION_WATCH="0")  # fmt: skip
                ours, bare = [], []
                for i in range(args.runs):
                    task = root / f"task-{name}-{agent_state}-{i}"
                    task.mkdir()
                    (task / "params.json").write_text("{}")
                    runner = [python, "-m", "everest_runtime", "run-task", "--model", str(model),
                              "--grace", f"{args.grace:g}"]  # fmt: skip
                    ours.append(one_run(runner, task, env))
                    status = (task / "status.txt").read_text().strip()
                    assert status.startswith("preempted: SIGTERM"), status
                    work = root / f"bare-{name}-{agent_state}-{i}"
                    work.mkdir()
                    bare.append(one_run([python, "-c", BASELINE, f"{args.grace:g}", python,
                                         str(model / "m.py")], work, base_env))  # fmt: skip
                rows.append((name, agent_state, statistics.median(ours), statistics.median(bare),
                             max(ours)))  # fmt: skip
    print(f"SIGTERM-to-exit, grace {args.grace:g} s, {args.runs} runs each (medians; max of ours)")
    header = ("model", "agent", "ours s", "baseline s", "extra s", "ours max s",
              f"left of {CLOUD_NOTICE:g} s")  # fmt: skip
    print("  ".join(f"{h:>11}" for h in header))
    for name, state, ours_s, bare_s, worst in rows:
        cells = (name, state, f"{ours_s:.2f}", f"{bare_s:.2f}", f"{ours_s - bare_s:+.2f}",
                 f"{worst:.2f}", f"{CLOUD_NOTICE - worst:.2f}")  # fmt: skip
        print("  ".join(f"{c:>11}" for c in cells))
    print(json.dumps({"grace": args.grace, "rows": rows}))


if __name__ == "__main__":
    main()
