"""runs/sweep-<id>/report.html: one self-contained page (inline SVG, CSS and a few
lines of script; nothing fetched, works offline) of a sweep: its totals, a
timeline of every job's queue and run time with preemptions and resubmissions
marked, each swept parameter against each metric, CPU and memory per job, and
the summary table (click a heading to sort).

Charts stay small at 10,000 jobs: each is a handful of SVG paths (one path per
colour), not one element per job.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake.everest.summary import outcome_of, read_rows
from everbake.everest.sweepstate import LOST, SweepState

REPORT_FILE = "report.html"
MAX_SCATTERS = 12
W, H = 520, 250  # a chart's size: two side by side on a laptop's screen
PAD_L, PAD_R, PAD_T, PAD_B = 62, 14, 26, 40
COLOURS = {
    "DONE": "#2a9d8f",
    "FAILED": "#d62828",
    "preempted": "#f4a261",
    "no outputs": "#9d0208",
    "CANCELLED": "#6c757d",
    "MISSING": "#adb5bd",
    LOST: "#7b2cbf",  # submit answers lost: the job may exist
    "running": "#457b9d",
}
QUEUE_COLOUR = "#ced4da"
POINT_COLOUR = "#1d3557"


def write(state: SweepState) -> Path:
    """Write report.html from the state and summary.json (written first)."""
    rows = read_rows(state.directory / "summary.json")
    totals = json.loads((state.directory / "summary.json").read_text(encoding="utf-8"))["totals"]
    page = render(state, rows, totals)
    path = state.directory / REPORT_FILE
    for stale in state.directory.glob(f".{REPORT_FILE}.*.tmp"):  # a killed writer's
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def render(state: SweepState, rows: list[dict[str, Any]], totals: dict[str, Any]) -> str:
    charts = [
        timeline(state),
        per_job(rows, "cpu_seconds", "CPU seconds per job", "s"),
        per_job(rows, "peak_rss_bytes", "peak memory per job", "MB", 1e-6),
        *scatters(rows),
    ]
    body = [
        f"<h1>sweep {_e(state.sweep_id)}</h1>",
        f"<p class=sub>app {_e(state.app)} · grid {_e(state.grid)}</p>",
        totals_block(totals),
        '<div class="charts">',
        *charts,
        "</div>",
        table(rows),
    ]
    return PAGE.replace("{{title}}", _e(f"sweep {state.sweep_id}")).replace(
        "{{body}}", "\n".join(body)
    )


# ----------------------------------------------------------------- totals
def totals_block(t: dict[str, Any]) -> str:
    cards = [("variations", t["variations"], "total-variations")]
    for outcome, n in t["outcomes"].items():
        cards.append((outcome, n, f"count-{outcome.replace(' ', '-')}"))
    cards += [
        ("jobs submitted", t["jobs"], "total-jobs"),
        ("resubmitted", t["resubmissions"], "total-resubmissions"),
        ("preempted", t["preemptions"], "total-preemptions"),
        ("CPU-hours", f"{t['cpu_hours']:.3f}", "total-cpu-hours"),
        ("run-hours", f"{t['run_hours']:.3f}", "total-run-hours"),
    ]
    if t.get("wall_seconds") is not None:
        cards.append(("wall", _duration(t["wall_seconds"]), "total-wall"))
    if t.get("cost") is not None:
        cur = f" {t['currency']}" if t.get("currency") else ""
        cards.append(("estimated cost", f"{money(t['cost'])}{cur}", "total-cost"))
        if t.get("cost_standard") is not None:
            cards.append(("on standard VMs", f"{money(t['cost_standard'])}{cur}", "total-cost-std"))
    items = "".join(
        f'<div class=card><div class=v id="{i}">{_e(str(v))}</div><div class=k>{_e(k)}</div></div>'
        for k, v, i in cards
    )
    note = (
        "<p class=note>Cost: run time times the spec's hourly price, divided by the task "
        "slots; VM start-up and idle time are not counted.</p>"
        if t.get("cost") is not None
        else "<p class=note>No prices in the spec's [resource]: CPU-hours only.</p>"
    )
    return f'<div class="cards">{items}</div>{note}'


def money(value: float) -> str:
    """Cents for real sums; small sums (short test sweeps) keep 3 significant digits."""
    return f"{value:.2f}" if value >= 1 or value == 0 else f"{value:.3g}"


# --------------------------------------------------------------- plotting
@dataclass
class Axis:
    lo: float
    hi: float
    pixels: tuple[float, float]
    ticks: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: Iterable[float], pixels: tuple[float, float], zero: bool = False) -> Axis:
        vals = [v for v in values if v is not None and math.isfinite(v)]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        if zero:
            lo = min(lo, 0.0)
        if hi <= lo:
            hi = lo + (abs(lo) or 1.0)
        ticks = nice_ticks(lo, hi)
        return cls(min(lo, ticks[0]), max(hi, ticks[-1]), pixels, ticks)

    def __call__(self, v: float) -> float:
        a, b = self.pixels
        return a + (v - self.lo) / (self.hi - self.lo) * (b - a)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= count:
            step *= mult
            break
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v < hi + step * 0.5:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _num(v: float) -> str:
    return f"{v:.4g}"


def frame(
    title: str, x: Axis, y: Axis, xlabel: str, ylabel: str, marks: str, n: int, caption: str = ""
) -> str:
    parts = [
        f'<figure class=chart><svg class=plot data-points="{n}" viewBox="0 0 {W} {H}" '
        f'width="{W}" height="{H}" role="img" aria-label="{_e(title)}">',
        f'<text x="{PAD_L}" y="16" class=t>{_e(title)}</text>',
    ]
    for t in x.ticks:
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" class=g />'
            f'<text x="{px:.1f}" y="{H - PAD_B + 14}" class=tick '
            f"text-anchor=middle>{_num(t)}</text>"
        )
    for t in y.ticks:
        py = y(t)
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{py:.1f}" y2="{py:.1f}" class=g />'
            f'<text x="{PAD_L - 6}" y="{py + 4:.1f}" class=tick text-anchor=end>{_num(t)}</text>'
        )
    parts.append(
        f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" class=lab text-anchor=middle>'
        f"{_e(xlabel)}</text>"
        f'<text transform="translate(14 {(PAD_T + H - PAD_B) / 2}) rotate(-90)" class=lab '
        f"text-anchor=middle>{_e(ylabel)}</text>"
    )
    parts.append(marks)
    parts.append("</svg>")
    if caption:
        parts.append(f"<figcaption>{_e(caption)}</figcaption>")
    parts.append("</figure>")
    return "".join(parts)


def _x_pixels() -> tuple[float, float]:
    return (PAD_L, W - PAD_R)


def _y_pixels() -> tuple[float, float]:
    return (H - PAD_B, PAD_T)


# --------------------------------------------------------------- timeline
def timeline(state: SweepState) -> str:
    """One row per variation (by first submission): grey while queued, coloured by
    outcome while running; ▲ a preemption, | a resubmission."""
    bars: dict[str, list[str]] = {}
    queued: list[str] = []
    preempts: list[str] = []
    resubs: list[str] = []
    segments: list[tuple[float, list[tuple[float, float, float, str, int]]]] = []
    t0, t1 = math.inf, -math.inf
    for _, attempts in state.rows():
        mine: list[tuple[float, float, float, str, int]] = []
        for a in attempts:
            start = a["submitted_at"]
            if not start:
                continue
            end = a["ended_at"] or start
            run = a["running_at"] or end
            mine.append((start, run, end, a["outcome"] or a["state"] or "running", a["n"]))
            t0, t1 = min(t0, start), max(t1, end)
        if mine:
            segments.append((mine[0][0], mine))
    if not segments:
        return frame("job timeline", Axis.of([], _x_pixels()), Axis.of([], _y_pixels()),
                     "seconds since the first submission", "jobs", "", 0)  # fmt: skip
    segments.sort(key=lambda s: s[0])
    x = Axis.of([0.0, t1 - t0], _x_pixels(), zero=True)
    y = Axis.of([0, len(segments)], (PAD_T, H - PAD_B), zero=True)
    row_h = max(0.6, (H - PAD_B - PAD_T) / max(1, len(segments)) * 0.8)
    for row, (_, mine) in enumerate(segments):
        py = y(row + 0.5)
        for start, run, end, outcome, n in mine:
            qa, b, c = x(start - t0), x(run - t0), x(end - t0)
            if b > qa:
                queued.append(f"M{qa:.1f} {py:.2f}H{b:.1f}")
            bars.setdefault(outcome, []).append(f"M{b:.1f} {py:.2f}H{max(c, b + 0.8):.1f}")
            if outcome == "preempted":
                preempts.append(f"M{c:.1f} {py - 3.5:.1f}l3 5h-6z")
            if n > 0:
                resubs.append(f"M{qa:.1f} {py - 3:.1f}v6")
    width = f'stroke-width="{row_h:.2f}"'
    marks = [f'<path d="{"".join(queued)}" stroke="{QUEUE_COLOUR}" {width} fill=none />']
    for outcome, d in bars.items():
        colour = COLOURS.get(outcome, COLOURS["running"])
        marks.append(
            f'<path class="bar-{_e(outcome.replace(" ", "-"))}" d="{"".join(d)}" '
            f'stroke="{colour}" {width} fill=none />'
        )
    if preempts:
        marks.append(f'<path class=preempted d="{"".join(preempts)}" fill="#e76f51" />')
    if resubs:
        marks.append(
            f'<path class=resubmitted d="{"".join(resubs)}" stroke="#1d3557" stroke-width="1.2" />'
        )
    legend = _legend([("queued", QUEUE_COLOUR), *[(k, COLOURS.get(k, "#457b9d")) for k in bars]])
    return frame(
        "job timeline",
        x,
        y,
        "seconds since the first submission",
        "jobs",
        "".join(marks) + legend,
        sum(len(m) for _, m in segments),
        "one row per variation: grey while queued, coloured while running; "
        "▲ a preemption, | a resubmission"
        if preempts or resubs
        else "",
    )


def _legend(items: Sequence[tuple[str, str]]) -> str:
    out, px = [], W - PAD_R
    for label, colour in reversed(items):
        px -= 10 + 7 * len(label) + 14
        out.append(
            f'<rect x="{px}" y="8" width="10" height="10" fill="{colour}" />'
            f'<text x="{px + 14}" y="17" class=tick>{_e(label)}</text>'
        )
    return "".join(out)


# ---------------------------------------------------------------- scatter
def _numeric(rows: list[dict[str, Any]], key: str) -> bool:
    seen = [r.get(key) for r in rows if r.get(key) is not None]
    return bool(seen) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen)


def scatters(rows: list[dict[str, Any]]) -> list[str]:
    """Each swept numeric parameter against each numeric metric (and run time)."""
    if not rows:
        return []
    keys = list(rows[0])
    params = [k for k in keys if k.startswith("param.") and _numeric(rows, k)]
    params = [k for k in params if len({r.get(k) for r in rows}) > 1] or params
    metrics = [k for k in keys if k.startswith("metric.") and _numeric(rows, k)]
    metrics.append("run_seconds")
    charts: list[str] = []
    for p in params:
        for m in metrics:
            if len(charts) >= MAX_SCATTERS:
                return charts
            charts.append(scatter(rows, p, m))
    return charts


def scatter(rows: list[dict[str, Any]], xkey: str, ykey: str) -> str:
    pts = [
        (r[xkey], r[ykey], outcome_of(r))
        for r in rows
        if isinstance(r.get(xkey), int | float) and isinstance(r.get(ykey), int | float)
    ]
    x = Axis.of([p[0] for p in pts], _x_pixels())
    y = Axis.of([p[1] for p in pts], _y_pixels())
    by_colour: dict[str, list[str]] = {}
    for px, py, outcome in pts:
        colour = POINT_COLOUR if outcome == "DONE" else COLOURS.get(outcome, "#6c757d")
        by_colour.setdefault(colour, []).append(f"M{x(px):.1f} {y(py):.1f}h0")
    radius = 6 if len(pts) < 200 else 3
    marks = "".join(
        f'<path d="{"".join(d)}" stroke="{c}" stroke-width="{radius}" stroke-linecap=round '
        "fill=none />"
        for c, d in by_colour.items()
    )
    name_x, name_y = xkey.removeprefix("param."), ykey.removeprefix("metric.")
    return frame(f"{name_y} against {name_x}", x, y, name_x, name_y, marks, len(pts))


# ---------------------------------------------------------------- per job
def per_job(rows: list[dict[str, Any]], key: str, title: str, unit: str, scale: float = 1.0) -> str:
    vals = [(n, r[key] * scale) for n, r in enumerate(rows) if isinstance(r.get(key), int | float)]
    x = Axis.of([0, max(1, len(rows))], _x_pixels(), zero=True)
    y = Axis.of([v for _, v in vals], _y_pixels(), zero=True)
    bar_w = max(0.5, (W - PAD_L - PAD_R) / max(1, len(rows)) * 0.8)
    base = y(0.0)
    d = "".join(f"M{x(n + 0.5):.2f} {base:.1f}V{y(v):.1f}" for n, v in vals)
    marks = f'<path d="{d}" stroke="{COLOURS["running"]}" stroke-width="{bar_w:.2f}" fill=none />'
    return frame(title, x, y, "variation", unit, marks, len(vals))


# ------------------------------------------------------------------ table
def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No variations.</p>"
    cols = list(rows[0])
    head = "".join(f"<th data-col={n}>{_e(c)}</th>" for n, c in enumerate(cols))
    lines = [
        f"<h2>summary <span class=sub>({len(rows)} variations; click a heading to sort)</span>"
        f"</h2><table id=summary><thead><tr>{head}</tr></thead><tbody>"
    ]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, int | float) and not isinstance(v, bool):
                shown = _num(v) if isinstance(v, float) else str(v)
                cells.append(f'<td class=n data-v="{v}">{_e(shown)}</td>')
            else:
                cells.append(f"<td>{_e('' if v is None else str(v))}</td>")
        lines.append(f"<tr class=\"o-{_e(outcome_of(r).replace(' ', '-'))}\">"
                     + "".join(cells) + "</tr>")  # fmt: skip
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212529;background:#fff}
h1{margin:0 0 4px;font-size:22px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#6c757d;font-weight:normal;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 4px}
.card{border:1px solid #dee2e6;border-radius:6px;padding:8px 14px;min-width:90px}
.card .v{font-size:20px;font-weight:600} .card .k{color:#6c757d;font-size:12px}
.note{color:#6c757d;font-size:12px;margin:4px 0 12px}
.charts{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;border:1px solid #dee2e6;border-radius:6px;padding:4px}
figcaption{color:#6c757d;font-size:12px;padding:0 8px 4px;max-width:500px}
svg text{font-size:11px;fill:#495057} svg .t{font-size:13px;font-weight:600;fill:#212529}
svg .g{stroke:#eef0f2;stroke-width:1} svg .lab{font-size:12px}
table{border-collapse:collapse;font-size:12px}
th,td{border-bottom:1px solid #eef0f2;padding:3px 8px;text-align:left;white-space:nowrap}
th{position:sticky;top:0;background:#f8f9fa;cursor:pointer;user-select:none}
th.asc::after{content:" ▲"} th.desc::after{content:" ▼"}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.o-FAILED td,tr.o-no-outputs td{background:#fff0f0}
tr.o-preempted td{background:#fff6ec}
</style></head><body>
{{body}}
<script>
document.querySelectorAll("#summary th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = +th.dataset.col;
    var asc = !th.classList.contains("asc");
    table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col], y = b.cells[col];
      var p = x.dataset.v, q = y.dataset.v, r;
      if (p !== undefined && q !== undefined) r = p - q;
      else if (p !== undefined) r = -1;
      else if (q !== undefined) r = 1;
      else r = x.textContent.localeCompare(y.textContent);
      return asc ? r : -r;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
</script>
</body></html>
"""
