"""report.html in a real browser: headless Chromium renders it offline with the right
numbers (read back from the DOM) and charts that are not empty (read from a
screenshot's pixels)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from everbake.everest import sweep
from everbake.everest.liveview import SweepView
from tests.fakes import everest_jobs as fj
from tests.jobs.conftest import APP, Site
from tests.runtime.test_chart import png_pixels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PREEMPTED_ONCE = {(80, "v1"), (100, "v2"), (90, "v3")}
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium: scripts/setup installs Debian's chromium"
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        timeout=180,
    )


def report_sweep(site: Site, tmp_path: Path) -> sweep.SweepOutcome:
    seen: set[tuple[int, str]] = set()

    def plan(inputs: dict, n: int) -> fj.Script:
        key = (inputs["params"]["freight"], inputs["version"])
        if key in PREEMPTED_ONCE and key not in seen:
            seen.add(key)
            return fj.preempted()
        script = fj.done(objective=key[0] * 10)
        script.metrics = {"objective": key[0] * 10 + int(key[1][1:]), "solve_seconds": n / 7}
        script.cpu_seconds, script.peak_rss_bytes = 0.5 + n / 20, (40 + n) * 1_000_000
        return script

    site.jobs.plan, site.jobs.step = plan, 0.03
    grid = tmp_path / "grid.toml"
    grid.write_text(
        textwrap.dedent("""\
        [product]
        version = ["v1", "v2", "v3"]
        [product.params]
        freight = [70, 80, 90, 100]
        """)
    )
    state = sweep.start(APP, grid, tmp_path / "runs", 4, 2)
    return sweep.run(site.api(backoff=0.001), state, SweepView(tty=False), rate=100)


def test_the_report_is_one_file_that_needs_no_network(site, tmp_path):
    outcome = report_sweep(site, tmp_path)
    page = outcome.report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count("<tr class=") == 12


@needs_chromium
def test_chromium_renders_the_report_with_the_right_numbers_and_non_empty_charts(site, tmp_path):
    outcome = report_sweep(site, tmp_path)
    url = outcome.report.resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    html = dom.stdout.decode()

    def card(ident: str) -> str:
        found = re.search(rf'id="{ident}">([^<]*)<', html)
        assert found, ident
        return found.group(1)

    totals = json.loads(outcome.json.read_text())["totals"]
    assert card("total-variations") == "12" and card("count-DONE") == "12"
    assert card("total-jobs") == "15"
    assert card("total-resubmissions") == "3" and card("total-preemptions") == "3"
    assert card("total-cpu-hours") == f"{totals['cpu_hours']:.3f}"
    assert "total-cost" not in html  # no prices given
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr") == 12
    points = [int(n) for n in re.findall(r'class="plot" data-points="(\d+)"', html)]
    assert len(points) >= 4 and all(n > 0 for n in points), points
    assert 'class="preempted"' in html and 'class="resubmitted"' in html

    shot = tmp_path / "report.png"
    taken = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1300",
                     "--hide-scrollbars", url)  # fmt: skip
    assert taken.returncode == 0 and shot.is_file(), taken.stderr.decode()[-2000:]
    shutil.copy(shot, Path("/tmp/i21-report.png"))
    _, _, rows = png_pixels(shot.read_bytes())

    def pixels_of(colour: str) -> int:
        rgb = bytes.fromhex(colour[1:])
        return sum(
            row[i : i + 3] == rgb for row in rows for i in range(0, len(row), 3)
        )  # exact colour of a chart's marks

    assert pixels_of("#2a9d8f") > 300  # DONE runs in the timeline
    assert pixels_of("#f4a261") > 20  # preempted runs
    assert pixels_of("#1d3557") > 300  # scatter points of the parameter charts
    assert pixels_of("#457b9d") > 300  # CPU and memory per job
