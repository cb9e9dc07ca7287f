"""stats.svg from a real task: well-formed, labelled, rendered by a real SVG
renderer (rsvg-convert, Debian's librsvg2-bin) into an image that shows the plot."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.runtime.cli_env import PYTHON, clean_env

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
