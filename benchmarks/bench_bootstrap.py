"""Bootstrap speed, each figure as a ratio against a baseline from the same run.

1. Cold fetch+extract of a ~100 MB .tar.gz from a loopback GitLab fake:
   `everest-bootstrap --fetch-only` vs `curl | tar xz` (target: within 1.3x),
   wall clock, and CPU seconds as a second figure less disturbed by other load.
2. Warm-cache overhead to model start: time from launching `everest-bootstrap`
   until the model's first line runs, minus the same for launching the model
   directly with the same interpreter (target: under 150 ms).

Usage: python benchmarks/bench_bootstrap.py [--mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.gitlab import GitLabFake  # noqa: E402

TOKEN = "bench-token"
SHA = hashlib.sha1(b"bench").hexdigest()
STARTUP_MODEL = "import time, os\nopen(os.environ['BENCH_STAMP'], 'w').write(repr(time.time()))\n"


def build_archive(megabytes: int) -> bytes:
    """Half random (incompressible), half text, like a model with data files."""
    buf = io.BytesIO()
    rng = os.urandom
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tf:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"model-{SHA}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        add("everest.toml", b'[model]\ncommand = ["python", "start.py"]\nresults = []\n')
        add("start.py", STARTUP_MODEL.encode())
        size, i = 0, 0
        while buf.tell() < megabytes * 1_000_000:
            if i % 2:
                data = rng(1 << 20)
            else:
                data = b"".join(b"row %d,%d,%f\n" % (i, j, j * 0.5) for j in range(60_000))
            add(f"data/part{i:04d}.bin", data)
            size += len(data)
            i += 1
    return buf.getvalue()


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("EVEREST_")}
    e["PYTHONPATH"] = str(REPO / "runtime")
    e["EVEREST_GITLAB_TOKEN"] = TOKEN
    e["EVEREST_PREEMPTION_WATCH"] = "0"  # no metadata server here; never leave loopback
    return e


def timed(cmd, cpu: list[float] | None = None, **kwargs) -> float:
    """Wall-clock seconds; with ``cpu``, also appends the CPU seconds (user+system)
    of the command and its children, a figure the shared machine's load disturbs less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("curl"):
        print("curl is needed for the baseline", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    try:
        archive = build_archive(args.mb)
        with GitLabFake(token=TOKEN) as gitlab:
            gitlab.project(1, "bench/model").add_commit(SHA, {}, refs=["v1"], archive=archive)
            url = f"{gitlab.url}/api/v4/projects/1/repository/archive.tar.gz?sha={SHA}"
            base = [sys.executable, "-m", "everest_runtime", "bootstrap", "--gitlab-url",
                    gitlab.url, "--project", "bench/model"]  # fmt: skip
            curl_times, boot_times = [], []
            curl_cpu: list[float] = []
            boot_cpu: list[float] = []
            for run in range(args.runs):
                out = work / f"curl{run}"
                out.mkdir()
                curl_times.append(
                    timed(
                        f"curl -sf -H 'PRIVATE-TOKEN: {TOKEN}' '{url}' | tar xzf - -C {out}",
                        curl_cpu,
                        shell=True,
                    )
                )
                cache = work / f"cache{run}"
                fetch = ["--ref", "v1", "--fetch-only", "--cache-dir", str(cache)]
                boot_times.append(timed([*base, *fetch], boot_cpu, env=env()))
                shutil.rmtree(out)
                if run < args.runs - 1:
                    shutil.rmtree(cache)
            cache = work / f"cache{args.runs - 1}"

            # Warm cache: launch -> first line of the model.
            task = work / "task"
            task.mkdir()
            stamp = work / "stamp"
            model_dir = cache / SHA

            def to_start(cmd) -> float:
                e = env()
                e["BENCH_STAMP"] = str(stamp)
                start = time.time()
                subprocess.run(cmd, check=True, cwd=task, env=e, capture_output=True)
                return float(stamp.read_text()) - start

            direct, warm_sha, warm_tag = [], [], []
            for _ in range(max(5, args.runs)):
                direct.append(to_start([sys.executable, str(model_dir / "start.py")]))
                warm_sha.append(to_start([*base, "--ref", SHA, "--cache-dir", str(cache)]))
                warm_tag.append(to_start([*base, "--ref", "v1", "--cache-dir", str(cache)]))
        size = len(archive) / 1e6
        curl_m, boot_m = statistics.median(curl_times), statistics.median(boot_times)
        print(f"cold fetch+extract of a {size:.0f} MB archive from loopback (median of "
              f"{args.runs}):")  # fmt: skip
        print(f"  curl | tar xz          {curl_m:7.3f} s   (baseline)")
        print(f"  everest-bootstrap      {boot_m:7.3f} s   ratio {boot_m / curl_m:.2f}x"
              f"   (target <= 1.30x)")  # fmt: skip
        cc, bc = statistics.median(curl_cpu), statistics.median(boot_cpu)
        print(f"  CPU (user+sys): curl | tar xz {cc:.3f} s, everest-bootstrap {bc:.3f} s, "
              f"ratio {bc / cc:.2f}x")  # fmt: skip
        d, s, t = (statistics.median(x) for x in (direct, warm_sha, warm_tag))
        print("warm cache, launch -> model start (median):")
        print(f"  model run directly     {d * 1000:7.1f} ms  (baseline)")
        print(f"  bootstrap, full SHA    {s * 1000:7.1f} ms  overhead {(s - d) * 1000:6.1f} ms"
              f"  ratio {s / d:.2f}x  (target overhead < 150 ms)")  # fmt: skip
        print(f"  bootstrap, tag (1 API) {t * 1000:7.1f} ms  overhead {(t - d) * 1000:6.1f} ms"
              f"  ratio {t / d:.2f}x")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
