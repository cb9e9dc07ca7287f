"""What a sweep tells a person: the model's metrics and the runtime's statistics as
summary columns beside the parameters, and cost only when the spec gives prices."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

from everbake.errors import EverbakeError
from everbake.everest import sweep
from everbake.everest.liveview import SweepView
from everbake.everest.pricing import Prices
from everbake.spec import load_spec
from tests.fakes import everest_jobs as fj
from tests.jobs.conftest import APP, Site


def plan(inputs: dict, n: int) -> fj.Script:
    x = inputs["params"]["freight"]
    script = fj.done(objective=x * 1.5)
    script.metrics = {"objective": x * 1.5, "gap": 0.0, "solver": "highs", "nested": {"no": 1}}
    script.cpu_seconds, script.peak_rss_bytes = x / 10, x * 1_000_000
    return script


def without_metrics(inputs: dict, n: int) -> fj.Script:
    script = plan(inputs, n)
    script.metrics = None  # the model wrote no out/metrics.json
    return script


def run(site: Site, tmp_path: Path, settings: dict | None = None, jobs_plan=plan):
    site.jobs.step = 0.03
    site.jobs.plan = jobs_plan
    grid = tmp_path / "grid.toml"
    grid.write_text(
        textwrap.dedent("""\
        [base]
        version = "v1"
        [product.params]
        freight = [80, 90, 100]
        """)
    )
    state = sweep.start(APP, grid, tmp_path / "runs", 3, 0, settings)
    return sweep.run(site.api(backoff=0.001), state, SweepView(tty=False), rate=100)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_and_statistics_are_columns_beside_the_parameters(site, tmp_path):
    # The app export-app writes maps metrics.json (conftest: the fake holds that app).
    assert {"param": "metrics", "file": "metrics.json", "pattern": ""} in (
        site.fake.apps[site.app_id]["config"]["outputMappings"]
    )
    outcome = run(site, tmp_path)
    rows = csv_rows(outcome.csv)
    head = list(rows[0])
    assert head[:7] == ["variation", "version", "state", "last_status", "elapsed", "job",
                        "resubmissions"]  # fmt: skip
    assert {"attempts", "run_seconds", "cpu_seconds", "peak_rss_bytes"} <= set(head)
    assert "param.freight" in head
    assert [k for k in head if k.startswith("metric.")] == [
        "metric.gap",
        "metric.objective",
        "metric.solver",
    ]  # fmt: skip  (numbers and short strings; the nested value is left out)
    for row in rows:
        x = int(row["param.freight"])
        assert float(row["metric.objective"]) == x * 1.5 and row["metric.solver"] == "highs"
        assert float(row["cpu_seconds"]) == x / 10 and int(row["peak_rss_bytes"]) == x * 1_000_000
        assert row["attempts"] == "1"
    assert "cost" not in head  # no prices: CPU-hours only
    totals = json.loads(outcome.json.read_text())["totals"]
    assert totals["cpu_hours"] == round((8 + 9 + 10) / 3600, 4)
    assert totals["cost"] is None


def test_without_metrics_json_the_columns_are_simply_absent(site, tmp_path):
    outcome = run(site, tmp_path, jobs_plan=without_metrics)
    head = list(csv_rows(outcome.csv)[0])
    assert not [k for k in head if k.startswith("metric.")]
    assert [r["state"] for r in outcome.table] == ["DONE"] * 3  # metrics are optional
    assert not list(outcome.csv.parent.glob("*/metrics.json"))


def test_cost_appears_with_prices_and_compares_with_standard_vms(site, tmp_path):
    prices = Prices(standard=0.40, preemptible=0.10, currency="USD", preemptible_vms=True,
                    task_slots=2, image="optimization")  # fmt: skip
    outcome = run(site, tmp_path, {"prices": prices.as_setting()})
    rows = csv_rows(outcome.csv)
    for row in rows:
        hours = float(row["run_seconds"]) / 3600
        assert float(row["cost"]) == pytest.approx(hours * 0.10 / 2, abs=1e-6)
        assert float(row["cost_standard"]) == pytest.approx(hours * 0.40 / 2, abs=1e-6)
    totals = json.loads(outcome.json.read_text())["totals"]
    assert totals["currency"] == "USD"
    assert totals["cost_standard"] == pytest.approx(4 * totals["cost"], rel=1e-3)


def test_price_keys_load_from_the_specs_resource_table(tmp_path):
    base = Path("images/optimization.toml").read_text()
    spec_file = tmp_path / "priced.toml"
    spec_file.write_text(base + "\n")
    spec = load_spec(spec_file)
    assert Prices.from_spec(spec) is None  # no prices, no cost
    assert "[resource]" not in base
    text = base + '\n[resource]\nprice_per_hour = 0.4\ncurrency = "EUR"\n'
    spec_file.write_text(text)
    prices = Prices.from_spec(load_spec(spec_file))
    assert prices is not None and (prices.standard, prices.currency) == (0.4, "EUR")
    spec_file.write_text(text.replace("price_per_hour = 0.4", "price_per_hour = -1"))
    with pytest.raises(EverbakeError, match=r"resource\.price_per_hour: expected a number >= 0"):
        load_spec(spec_file)


def test_the_cli_takes_prices_from_the_spec_that_image_names(site, tmp_path):
    from tests.jobs.conftest import REPO

    images = tmp_path / "images"
    images.mkdir()
    (images / "defaults.toml").write_text((REPO / "images/defaults.toml").read_text())
    spec = (REPO / "images/optimization.toml").read_text()
    spec += "\n[resource]\nprice_per_hour = 0.4\npreemptible_price_per_hour = 0.1\n"
    (images / "optimization.toml").write_text(spec)
    site.jobs.step = 0.03
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": [1, 2]}}}))
    env = {"INVOKE_EVERBAKE_IMAGES_DIR": str(images)}
    args = ("sweep", "--max-requests-per-second", "100", "--app", APP, "--grid", str(grid))
    result = site.everbake(*args, "--image", "optimization", cwd=tmp_path, more_env=env)
    assert result.returncode == 0, result.stderr
    assert "estimated cost: " in result.stderr and "(on standard VMs: " in result.stderr
    [where] = (tmp_path / "runs").glob("sweep-*")
    assert {"cost", "cost_standard"} <= set(csv_rows(where / "summary.csv")[0])
    bad = site.everbake(*args, "--image", "nosuch", cwd=tmp_path, more_env=env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "nosuch" in bad.stderr
