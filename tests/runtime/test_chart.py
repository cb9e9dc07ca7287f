"""stats.svg from a real task: well-formed, labelled, rendered by a real SVG
renderer (rsvg-convert, Debian's librsvg2-bin) into an image that shows the plot."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.runtime.cli_env import PYTHON, RUNTIME, clean_env

if str(RUNTIME) not in sys.path:
    sys.path.insert(0, str(RUNTIME))

# Busy for ~1.5 s of CPU while holding ~60 MiB, then idle: a peak to find.
MODEL = """
import time
block = bytearray(60 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
end = time.process_time() + 1.5
while time.process_time() < end:
    pass
del block
time.sleep(1.0)
print("##status done")
"""


def run_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "m.py").write_text(MODEL)
    (model / "everest.toml").write_text(
        '[model]\nname = "knapsack"\ncommand = ["python", "m.py"]\nresults = []\n'
    )
    task = tmp_path / "task"
    task.mkdir()
    (task / "params.json").write_text(json.dumps({"debug": True}))
    result = subprocess.run(
        [PYTHON, "-m", "everest_runtime", "run-task", "--model", str(model),
         "--sample-interval", "0.2", "--no-preemption-watch"],
        cwd=task, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return task


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG, unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    assert header is not None
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6), "rsvg-convert writes 8-bit RGB(A)"
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(b"".join(line[i : i + 3] for i in range(0, stride, bpp)))
        previous = line
    return width, height, rows


def test_stats_svg_is_labelled_and_in_debug_zip(tmp_path):
    task = run_model(tmp_path)
    svg = (task / "stats.svg").read_text()
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[0].startswith("knapsack local /")  # name and version (here: a local path)
    assert texts[0].endswith("/model")
    assert any(t.startswith("CPU utilisation (cores") for t in texts)
    assert "memory (MiB)" in texts and "time (s)" in texts
    with open(task / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    peak_cpu = next(t for t in texts if t.startswith("peak ") and "cores" in t)
    assert float(peak_cpu.split()[1]) == pytest.approx(
        max(float(r["cpu_cores"]) for r in rows), abs=0.01
    )
    peak_rss = next(t for t in texts if t.startswith("peak RSS"))
    rss = max(int(r["rss_bytes"]) for r in rows) / 2**20
    assert float(peak_rss.split()[2]) == pytest.approx(rss, abs=0.1) and rss >= 60
    with zipfile.ZipFile(task / "debug.zip") as debug:
        assert debug.read("stats.svg").decode() == svg


@pytest.mark.skipif(
    shutil.which("rsvg-convert") is None, reason="scripts/setup installs librsvg2-bin"
)
def test_stats_svg_renders_to_an_image_with_the_plot(tmp_path):
    task = run_model(tmp_path)
    png = tmp_path / "stats.png"
    subprocess.run(["rsvg-convert", "-o", str(png), str(task / "stats.svg")], check=True)
    width, height, rows = png_pixels(png.read_bytes())
    assert (width, height) == (900, 610)
    white = b"\xff\xff\xff"
    inked = [sum(row[i : i + 3] != white for i in range(0, len(row), 3)) for row in rows]
    assert sum(inked) > 0.02 * width * height  # text, axes and lines, not a blank page
    # The CPU line is drawn in its colour (#1f77b4) inside the upper panel.
    upper = rows[100:280]
    blue = sum(row[i : i + 3] == b"\x1f\x77\xb4" for row in upper for i in range(0, len(row), 3))
    assert blue > 50


def test_chart_csv_and_json_tell_one_story(tmp_path):
    task = run_model(tmp_path)
    summary = json.loads((task / "stats.json").read_text())
    with open(task / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # The last row holds the final totals stats.json gives.
    assert float(rows[-1]["cpu_seconds"]) == pytest.approx(summary["cpu_seconds"], abs=0.001)
    assert float(rows[-1]["elapsed_s"]) == pytest.approx(summary["wall_seconds"], abs=0.001)
    assert max(float(r["cpu_cores"]) for r in rows) == summary["peak_cpu_cores"]
    # Dense sampling in the first seconds, whatever the interval.
    assert sum(float(r["elapsed_s"]) < 1.0 for r in rows) >= 5
    texts = svg_texts((task / "stats.svg").read_text())
    assert f"peak {_num(summary['peak_cpu_cores'])} cores" in " ".join(texts)
    assert f"CPU {_num(summary['cpu_seconds'])} s in" in " ".join(texts)


def _num(value: float) -> str:
    from everest_runtime.chart import _num as chart_num

    return chart_num(value)


def svg_texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]


def text_boxes(svg: str) -> list[tuple[str, float, float, float, float]]:
    """(text, left, top, right, bottom) of each label, from DejaVu Sans's widths
    (about 0.6 of the size per character, bold 0.63)."""
    boxes = []
    for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"):
        size = float(t.get("font-size", "12"))
        per = 0.63 if t.get("font-weight") == "bold" else 0.6
        width = per * size * len(t.text or "")
        x, y = float(t.get("x", "0")), float(t.get("y", "0"))
        left = {"start": x, "middle": x - width / 2, "end": x - width}[
            t.get("text-anchor", "start")
        ]
        boxes.append((t.text or "", left, y - 0.8 * size, left + width, y + 0.2 * size))
    return boxes


def synthetic_rows(seconds: float, interval: float = 1.0) -> tuple[str, dict]:
    """stats.csv of a sampler's schedule (dense first) for a ``seconds``-long task."""
    from everest_runtime import stats

    lines, t, cpu, peak_rss, peak_cores = [",".join(stats.CSV_COLUMNS)], 0.0, 0.0, 0, 0.0
    previous = 0.0
    while t <= seconds + 1e-9:
        cores = 0.0 if t == 0 else 1.5 + 0.4 * ((t * 7) % 3) / 3
        cpu += cores * (t - previous)
        rss = int((200 + 300 * t / max(seconds, 1e-9)) * 2**20)
        peak_rss = max(peak_rss, rss)
        peak_cores = max(peak_cores, round(cores, 3))
        lines.append(f"{t:.3f},0,2,{cpu:.3f},{cores:.3f},{rss},{int(rss * 0.95)}")
        previous = t
        t += stats.DENSE_INTERVAL if t < stats.DENSE_SECONDS else interval
    summary = {"cpu_seconds": round(cpu, 3), "wall_seconds": seconds, "peak_rss_bytes": peak_rss,
               "peak_cpu_cores": peak_cores, "samples": len(lines) - 1}  # fmt: skip
    return "\n".join(lines) + "\n", summary


@pytest.mark.parametrize("seconds", [0.2, 15, 600])
def test_no_label_overlaps_another_for_short_and_long_tasks(tmp_path, seconds):
    from everest_runtime import chart

    text, summary = synthetic_rows(seconds)
    (tmp_path / "stats.csv").write_text(text)
    svg = chart.render_file(tmp_path / "stats.csv", "model v1.2 (3f2c1a9e)", summary)
    assert svg is not None
    boxes = text_boxes(svg)
    for i, a in enumerate(boxes):
        assert a[1] >= 0 and a[3] <= chart.WIDTH and a[2] >= 0 and a[4] <= chart.HEIGHT, a
        for b in boxes[i + 1 :]:
            overlap = a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
            assert not overlap, (a, b)
    joined = " ".join(t for t, *_ in boxes)
    assert ("time (min)" in joined) == (seconds >= 180)
    assert "peak RSS" in joined and "peak PSS" in joined
    assert f"peak {_num(summary['peak_cpu_cores'])} cores" in joined


def test_a_peak_between_samples_is_drawn_from_the_kernels_figure(tmp_path):
    from everest_runtime import chart

    text, summary = synthetic_rows(0.2)
    summary["peak_rss_bytes"] = 900 * 2**20
    (tmp_path / "stats.csv").write_text(text)
    svg = chart.render_file(tmp_path / "stats.csv", "m", summary)
    assert svg is not None and "stroke-dasharray" in svg
    assert "peak RSS 900 MiB (kernel's figure, between samples)" in svg_texts(svg)


def test_a_long_task_is_drawn_from_at_most_max_points(tmp_path):
    from everest_runtime import chart

    text, summary = synthetic_rows(7 * 24 * 3600, interval=60.0)
    (tmp_path / "stats.csv").write_text(text)
    svg = chart.render_file(tmp_path / "stats.csv", "week", summary)
    assert svg is not None
    polyline = max(svg.split("<polyline")[1:], key=len)
    assert polyline.count(",") <= 2 * chart.MAX_POINTS + 10
    assert f"{summary['samples']} samples" in svg


def test_damaged_rows_are_skipped(tmp_path):
    from everest_runtime import chart

    text, summary = synthetic_rows(15)
    junk = "junk,,x\n\x00\xff,not,a,row\n1e999,0,1,nan,inf,-5,\n3.5,0,1,2,1\n"
    (tmp_path / "stats.csv").write_text(text + junk, encoding="utf-8", errors="surrogateescape")
    svg = chart.render_file(tmp_path / "stats.csv", "m", summary)
    assert svg is not None and "nan" not in svg and "inf" not in svg
