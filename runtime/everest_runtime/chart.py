"""stats.svg: the task's CPU utilisation and memory over time, from stats.csv.

Standard library only: the SVG is written by hand. Two panels sharing the time
axis (CPU in cores, memory in MiB/GiB as RSS and, where the kernel gives it, PSS),
a title naming the model and its version, the totals, and each peak marked and
labelled with the number stats.json gives (a peak the kernel saw between two
samples is drawn as a dashed line). A long task's samples are reduced to at
most MAX_POINTS per series, keeping each bucket's highest value, in one pass.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from .outputs import write_text

WIDTH, HEIGHT = 900, 610
LEFT, RIGHT, TOP = 84, 30, 100
TITLE_CHARS = 72  # longer titles (a local path as the version) lose their middle
PANEL, GAP = 180, 70  # panel height, room between panels for tick labels and titles
CPU_COLOUR, RSS_COLOUR, PSS_COLOUR = "#1f77b4", "#d62728", "#9467bd"
MAX_POINTS = 1200
LABEL_CHAR = 8.0  # px per character of a bold 13 px label (DejaVu Sans is ~7.6)
_KEYS = ("elapsed_s", "cpu_cores", "rss_bytes", "pss_bytes")


def write_svg(csv_path: Path, svg_path: Path, title: str, summary: dict | None = None) -> bool:
    """Draw ``csv_path`` into ``svg_path`` (temp file, then rename); False when
    there are no samples to draw."""
    svg = render_file(csv_path, title, summary)
    if svg is None:
        return False
    write_text(svg_path, svg)
    return True


def render_file(csv_path: Path, title: str, summary: dict | None = None) -> str | None:
    """The SVG text for ``csv_path``; None when it holds no samples."""
    wall = float((summary or {}).get("wall_seconds") or 0.0)
    rows, count = _read(csv_path, wall)
    if not rows:
        return None
    return render(rows, title, summary, count)


def _read(path: Path, wall: float = 0.0) -> tuple[list[dict[str, float | None]], int]:
    """Rows (reduced to about MAX_POINTS buckets of wall / MAX_POINTS seconds,
    each keeping its highest values and last time) and the number of samples."""
    bucket = wall / MAX_POINTS if wall > 0 else 0.0
    rows: list[dict[str, float | None]] = []
    count = 0
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, float | None] = {}
            try:
                for key in _KEYS:
                    text = (raw.get(key) or "").strip()
                    row[key] = float(text) if text else None
            except ValueError:
                continue  # a damaged line (e.g. the disk filled mid-row)
            if row["elapsed_s"] is None or not all(
                v is None or (math.isfinite(v) and v >= 0) for v in row.values()
            ):
                continue  # not a sample the runner wrote
            count += 1
            previous = rows[-1] if rows else None
            same = (
                previous is not None
                and bucket
                and (int((previous["elapsed_s"] or 0) / bucket) == int(row["elapsed_s"] / bucket))
            )
            if not same or previous is None:
                rows.append(row)
                continue
            for key in _KEYS[1:]:
                old, new = previous[key], row[key]
                previous[key] = new if old is None else old if new is None else max(old, new)
            previous["elapsed_s"] = row["elapsed_s"]
    return rows, count


def render(
    rows: list[dict[str, float | None]],
    title: str,
    summary: dict | None = None,
    samples: int | None = None,
) -> str:
    times = [r["elapsed_s"] or 0.0 for r in rows]
    cpu = [r["cpu_cores"] or 0.0 for r in rows]
    rss = [r["rss_bytes"] or 0.0 for r in rows]
    pss = [r["pss_bytes"] for r in rows]
    has_pss = any(v is not None for v in pss)
    minutes = times[-1] >= 180
    time_unit, time_scale = ("min", 60.0) if minutes else ("s", 1.0)
    x_ticks = _ticks(times[-1] / time_scale)
    span = x_ticks[-1] * time_scale  # the axis ends on a round number
    top_rss = max(max(rss), float((summary or {}).get("peak_rss_bytes") or 0))
    mem_unit, mem_scale = ("GiB", 2.0**30) if top_rss >= 2 * 2.0**30 else ("MiB", 2.0**20)
    cores = os.cpu_count() or 1
    summary = summary or {}
    peak_rss = max(float(summary.get("peak_rss_bytes") or 0), max(rss))
    between = peak_rss > max(rss)  # the kernel saw it between two samples
    wall = float(summary.get("wall_seconds") or times[-1])
    cpu_total = summary.get("cpu_seconds")
    totals = ""
    if cpu_total is not None:
        totals = f"CPU {_num(float(cpu_total))} s in {_num(wall)} s wall"
        totals += f" ({_num(float(cpu_total) / wall if wall > 0 else 0.0)} cores on average); "

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        _text(LEFT, 32, _shorten(title), size=19, weight="bold"),
        _text(
            LEFT,
            56,
            f"{totals}{samples if samples is not None else len(rows)} samples; "
            f"{cores} CPU core{'s' if cores != 1 else ''} here",
            size=13,
            fill="#555",
        ),
    ]
    cpu_top = max(max(cpu), 1.0)
    cpu_panel = _Panel(TOP, span, cpu_top)
    out += cpu_panel.frame("CPU utilisation (cores; 1 = one core busy)", x_ticks, time_scale)
    out += cpu_panel.steps(times, cpu, CPU_COLOUR)
    peak = max(range(len(cpu)), key=cpu.__getitem__)
    out += cpu_panel.peak(
        times[peak], cpu[peak], f"peak {_num(cpu[peak])} cores at {_when(times[peak], minutes)}"
    )

    mem_top = max(peak_rss, max((v or 0.0) for v in pss), 1.0) / mem_scale
    mem_panel = _Panel(TOP + PANEL + GAP, span, mem_top)
    out += mem_panel.frame(f"memory ({mem_unit})", x_ticks, time_scale, f"time ({time_unit})")
    out += mem_panel.series(times, [v / mem_scale for v in rss], RSS_COLOUR)
    if between:
        label = (
            f"peak RSS {_num(peak_rss / mem_scale)} {mem_unit} (kernel's figure, between samples)"
        )
        out += mem_panel.level(peak_rss / mem_scale, label, RSS_COLOUR)
    else:
        peak = max(range(len(rss)), key=rss.__getitem__)
        when = _when(times[peak], minutes)
        label = f"peak RSS {_num(rss[peak] / mem_scale)} {mem_unit} at {when}"
        out += mem_panel.peak(times[peak], rss[peak] / mem_scale, label)
    legend = [("RSS (resident, shared pages counted per process)", RSS_COLOUR)]
    if has_pss:
        known = [(t, v / mem_scale) for t, v in zip(times, pss) if v is not None]
        out += mem_panel.series([t for t, _ in known], [v for _, v in known], PSS_COLOUR)
        top = max(known, key=lambda item: item[1])
        out += mem_panel.peak(
            top[0], top[1], f"peak PSS {_num(top[1])} {mem_unit}", below=True, colour=PSS_COLOUR
        )
        legend.append(("PSS (shared pages divided among processes)", PSS_COLOUR))
    y = HEIGHT - 10
    x = LEFT
    for text, colour in legend:
        out.append(f'<rect x="{x}" y="{y - 9}" width="18" height="4" fill="{colour}"/>')
        out.append(_text(x + 24, y - 3, text, size=12))
        x += 30 + 7 * len(text)
    out.append("</svg>")
    return "\n".join(out) + "\n"


class _Panel:
    """One plot area: data (seconds, value) to pixels."""

    def __init__(self, top: int, span: float, y_max: float) -> None:
        self.top, self.span = top, span
        self.y_ticks = _ticks(y_max)
        self.y_max = self.y_ticks[-1]
        self.width = WIDTH - LEFT - RIGHT
        self.placed: list[tuple[float, float, float, float]] = []  # label boxes

    def x(self, seconds: float) -> float:
        return LEFT + self.width * seconds / self.span

    def y(self, value: float) -> float:
        return self.top + PANEL - PANEL * value / self.y_max

    def frame(self, name: str, x_ticks: list[float], scale: float, x_name: str = "") -> list[str]:
        out = [_text(LEFT, self.top - 10, name, size=14, weight="bold")]
        for tick in self.y_ticks:
            y = self.y(tick)
            out.append(_line(LEFT, y, LEFT + self.width, y, "#e3e3e3"))
            out.append(_text(LEFT - 8, y + 4, _num(tick), size=12, anchor="end"))
        for tick in x_ticks:
            x = self.x(tick * scale)
            out.append(_line(x, self.top, x, self.top + PANEL, "#eeeeee"))
            out.append(_text(x, self.top + PANEL + 17, _num(tick), size=12, anchor="middle"))
        out.append(_line(LEFT, self.top + PANEL, LEFT + self.width, self.top + PANEL, "#333"))
        out.append(_line(LEFT, self.top, LEFT, self.top + PANEL, "#333"))
        if x_name:
            middle = LEFT + self.width / 2
            out.append(_text(middle, self.top + PANEL + 36, x_name, size=13, anchor="middle"))
        return out

    def steps(self, times: list[float], values: list[float], colour: str) -> list[str]:
        """Each value held over the interval that ends at its time (a CPU row is
        the average since the previous sample), so nothing is drawn before the
        first interval ends."""
        if len(times) < 2:
            return self.series(times, values, colour)
        points = []
        for i in range(1, len(times)):
            points += [(times[i - 1], values[i]), (times[i], values[i])]
        return self.series([t for t, _ in points], [v for _, v in points], colour)

    def series(self, times: list[float], values: list[float], colour: str) -> list[str]:
        points = " ".join(f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in zip(times, values))
        if len(times) == 1:
            return [f'<circle cx="{self.x(times[0]):.1f}" cy="{self.y(values[0]):.1f}" '
                    f'r="3" fill="{colour}"/>']  # fmt: skip
        return [
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        ]

    def level(self, value: float, label: str, colour: str) -> list[str]:
        """A dashed line across the panel at ``value``, labelled above it."""
        y = self.y(value)
        return [
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + self.width}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-dasharray="6,4"/>',
            _text(LEFT + self.width - 4, y + (16 if y < self.top + 14 else -6), label, size=13,
                  anchor="end", weight="bold", fill=colour),
        ]  # fmt: skip

    def peak(
        self, seconds: float, value: float, label: str, below: bool = False, colour: str = "#000"
    ) -> list[str]:
        x, y = self.x(seconds), self.y(value)
        anchor = "end" if x > LEFT + self.width * 0.6 else "start"
        dx = -8 if anchor == "end" else 8
        dy = 18 if below or y < self.top + 14 else -8
        if y + dy > self.top + PANEL - 4:  # no room below the point: above it
            dy, below = -8, False
        ty = self._place(x + dx, y + dy, label, anchor, below)
        return [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="white" stroke="{colour}" '
            'stroke-width="2"/>',
            _text(x + dx, ty, label, size=13, anchor=anchor, weight="bold", fill=colour),
        ]

    def _place(self, x: float, y: float, label: str, anchor: str, down: bool) -> float:
        """A baseline near ``y`` where the label's box meets no label placed
        before it in this panel (moving away from the data, within the panel)."""
        width = LABEL_CHAR * len(label)
        left = x - width if anchor == "end" else x
        step = 16.0 if down else -16.0
        for _ in range(12):
            box = (left, y - 13, left + width, y + 3)
            if not any(_overlap(box, other) for other in self.placed):
                break
            y += step
            if not self.top + 12 <= y <= self.top + PANEL - 2:
                step, y = -step, y - step  # ran out of room: try the other way
        self.placed.append((left, y - 13, left + width, y + 3))
        return y


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _shorten(title: str) -> str:
    if len(title) <= TITLE_CHARS:
        return title
    keep = (TITLE_CHARS - 1) // 2
    return title[:keep] + "…" + title[-keep:]


def _ticks(top: float) -> list[float]:
    """0 and round steps up to at least ``top`` (about five of them)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def _num(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _when(seconds: float, minutes: bool) -> str:
    if minutes:
        return f"{seconds / 60:.1f} min"
    return f"{_num(seconds)} s"


def _line(x1: float, y1: float, x2: float, y2: float, colour: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"/>'


def _text(
    x: float,
    y: float,
    text: str,
    size: int = 12,
    anchor: str = "start",
    weight: str = "normal",
    fill: str = "#222",
) -> str:
    body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{fill}">{body}</text>'
    )
