"""The statistics sampler on real process trees (fork, burn CPU, allocate, exit)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))

from everest_runtime import stats  # noqa: E402

MIB = 1024 * 1024

# The root forks two children; each touches 80 MiB and burns ~0.6 s of CPU,
# holding the memory until the root says go (so the peak is concurrent).
TREE = textwrap.dedent(
    """
    import os, sys, time
    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            block = bytearray(80 * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            burn(0.6)
            time.sleep(float(sys.argv[1]))
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    """
)

# The root starts a child and exits at once; the orphan keeps working.
ORPHAN = textwrap.dedent(
    """
    import os, time
    if os.fork() == 0:
        end = time.process_time() + 0.8
        while time.process_time() < end:
            pass
        os._exit(0)
    time.sleep(0.3)
    """
)


def test_peak_rss_and_cpu_of_a_forked_tree(tmp_path):
    root = subprocess.Popen([sys.executable, "-c", TREE, "0.5"])
    sampler = stats.Sampler(root.pid, interval=0.05, csv_path=tmp_path / "stats.csv").start()
    root.wait()
    summary = sampler.stop()
    assert 2 * 80 * MIB <= summary["peak_rss_bytes"] < 2 * 80 * MIB + 200 * MIB
    assert 1.1 <= summary["cpu_seconds"] <= summary["wall_seconds"] * 2 + 0.2
    assert summary["peak_processes"] == 3
    assert 0 < summary["utilisation"] <= 2.1
    with open(tmp_path / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(stats.CSV_COLUMNS)
    assert len(rows) == summary["samples"]
    assert max(int(r["rss_bytes"]) for r in rows) == summary["peak_rss_bytes"]
    cpu = [float(r["cpu_seconds"]) for r in rows]
    assert cpu == sorted(cpu)
    assert any(float(r["cpu_cores"]) > 0.5 for r in rows)


def test_keeps_sampling_orphans_after_the_root_exits():
    root = subprocess.Popen([sys.executable, "-c", ORPHAN])
    sampler = stats.Sampler(root.pid, interval=0.05).start()
    root.wait()
    exited = time.monotonic()
    seen_alive = False
    while time.monotonic() - exited < 5:
        time.sleep(0.05)
        if sampler._known:
            seen_alive = True
        elif seen_alive:
            break
    summary = sampler.stop()
    assert seen_alive
    assert 0.7 <= summary["cpu_seconds"] <= 1.5
    assert summary["peak_processes"] == 2


def test_final_cpu_from_rusage_wins_when_larger():
    root = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = stats.Sampler(root.pid, interval=10).start()
    root.wait()
    summary = sampler.stop(final_cpu_seconds=12.5)
    assert summary["cpu_seconds"] == 12.5


def test_failures_are_logged_once_and_sampling_carries_on(tmp_path):
    lines: list[str] = []
    sampler = stats.Sampler(1, interval=0.01, log=lines.append, proc=str(tmp_path / "none"))
    sampler.start()
    time.sleep(0.1)
    summary = sampler.stop()
    assert summary["samples"] == 0
    assert len(lines) == 1 and "sampling failed" in lines[0] and "carrying on" in lines[0]


def test_unwritable_csv_is_reported_and_sampling_still_works(tmp_path):
    lines: list[str] = []
    target = tmp_path / "missing-dir" / "stats.csv"
    sampler = stats.Sampler(1, interval=0.01, csv_path=target, log=lines.append).start()
    summary = sampler.stop()
    assert summary["samples"] >= 2
    assert any(str(target) in line for line in lines)


def test_comm_with_parentheses_and_spaces_is_parsed(tmp_path):
    fake = tmp_path / "proc" / "4242"
    fake.mkdir(parents=True)
    fields = ["S", "7"] + ["0"] * 9 + ["100", "50", "30", "20"] + ["0"] * 4 + ["999", "0", "25"]
    (fake / "stat").write_text("4242 (evil) (name) " + " ".join(fields) + " 0 0\n")
    stat = stats.read_stat(4242, str(tmp_path / "proc"))
    assert stat is not None
    assert stat.ppid == 7 and stat.start == 999
    assert stat.cpu == 200 / stats._TICK
    assert stat.rss == 25 * stats._PAGE


def test_write_summary_is_atomic_json(tmp_path):
    summary = {"peak_rss_bytes": 1, "cpu_seconds": 2.0, "wall_seconds": 4.0, "utilisation": 0.5}
    path = tmp_path / "stats.json"
    stats.write_summary(path, summary)
    assert json.loads(path.read_text()) == summary
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


# The root touches 80 MiB, then forks two children that only sleep: the three
# share those pages, so RSS summed over the tree counts them three times.
SHARED = textwrap.dedent(
    """
    import os, time
    block = bytearray(80 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            time.sleep(1.0)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    """
)


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="no smaps_rollup")
def test_pss_counts_shared_pages_once(tmp_path):
    root = subprocess.Popen([sys.executable, "-c", SHARED])
    sampler = stats.Sampler(root.pid, interval=0.1, csv_path=tmp_path / "stats.csv").start()
    root.wait()
    summary = sampler.stop()
    assert summary["peak_rss_bytes"] >= 3 * 80 * MIB
    assert 80 * MIB <= summary["peak_pss_bytes"] < 1.5 * 80 * MIB + 40 * MIB
    with open(tmp_path / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert max(int(r["pss_bytes"]) for r in rows) == summary["peak_pss_bytes"]
