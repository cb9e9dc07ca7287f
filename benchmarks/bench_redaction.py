"""Redaction throughput: a model writing 300 MB to stdout through
everest-run-task (redacted stream to our stdout and into .everest/logs, with
secrets in the environment) against the same model's stdout read from a plain
pipe by a bare Python parent (baseline, same run). Also the redactor alone, in
process, against a plain bytes copy, with clean data and with a secret in
every MiB.

Usage: python benchmarks/bench_redaction.py [--mb 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))

from everest_runtime import redact  # noqa: E402

SECRETS = {
    "SOLVER_LICENSE_KEY": "lic-" + "Zk3q" * 8,
    "EVEREST_TASK_TOKEN": "tt-9f8e7d6c5b4a",
    "PEM_KEY": "-----BEGIN KEY-----\n" + "\n".join("A" * 64 for _ in range(20)) + "\n-----END-----",
}
MODEL = """
import os, sys
line = b"iteration 000123 objective 1234.5678 gap 0.0012 nodes 99999".ljust(127) + b"\\n"
block = line * 8192  # 1 MiB
for _ in range({mb}):
    os.write(1, block)
"""
BARE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
fd = proc.stdout.fileno()
while os.read(fd, 65536):
    pass
proc.wait()
"""


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return time.monotonic() - start


def in_process(mb: int, secret_every_mib: bool) -> tuple[float, float]:
    """(MB/s of redact.Stream, MB/s of a plain copy) over ``mb`` MiB in 64 KiB reads."""
    secrets = redact.secret_values(SECRETS)
    chunk = bytearray(b"x" * 65535 + b"\n")
    data = bytes(chunk)
    hit = bytes(chunk[:-100]) + secrets[0].encode() + b"\n" + b"y" * (99 - len(secrets[0]))
    pieces = [hit if secret_every_mib and i % 16 == 0 else data for i in range(mb * 16)]
    sink = bytearray()
    start = time.perf_counter()
    for piece in pieces:
        sink[:] = piece
    plain = time.perf_counter() - start
    stream = redact.Stream(secrets)
    start = time.perf_counter()
    for piece in pieces:
        sink[:] = stream.feed(piece)
    sink[:] = stream.close()
    ours = time.perf_counter() - start
    return mb / ours, mb / plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVEREST_")}
    env.update(SECRETS, PYTHONPATH=str(REPO / "runtime"), EVEREST_PREEMPTION_WATCH="0")
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = root / "model"
        model.mkdir()
        (model / "m.py").write_text(MODEL.format(mb=args.mb))
        (model / "everest.toml").write_text('[model]\ncommand = ["python", "m.py"]\n')
        for i in range(args.runs):
            task = root / f"task{i}"
            task.mkdir()
            (task / "params.json").write_text("{}")
            runner = [sys.executable, "-m", "everest_runtime", "run-task", "--model", str(model)]
            ours.append(timed(runner, task, env))
            log = task / ".everest" / "logs" / "stdout.log"
            assert log.stat().st_size == args.mb << 20, log.stat().st_size
            bare.append(timed([sys.executable, "-c", BARE, sys.executable, str(model / "m.py")],
                              root, env))  # fmt: skip
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"{args.mb} MB of stdout, {args.runs} runs, medians")
    print(f"  plain pipe (bare parent):      {b:6.2f} s  {args.mb / b:7.0f} MB/s")
    print("  everest-run-task (redacted,")
    print(
        f"    to stdout and stdout.log):   {o:6.2f} s  {args.mb / o:7.0f} MB/s  ratio {o / b:.2f}x"
    )
    for label, hits in (("clean data", False), ("a secret every MiB", True)):
        r, p = in_process(min(args.mb, 200), hits)
        print(f"  redact.Stream alone, {label:18s} {r:7.0f} MB/s vs copy {p:7.0f} MB/s"
              f" (ratio {p / r:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
