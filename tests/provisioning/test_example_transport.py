"""The example job's expected optimum, proven from its own data without a solver:
the certificate's plan is feasible, its duals are dual-feasible, and both give
the expected cost (weak duality), so the end-to-end test may trust it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import tomllib

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/transport"
JOB = EXAMPLE / "job"


@pytest.fixture(scope="module")
def data() -> dict[str, list[dict[str, str]]]:
    with tarfile.open(JOB / "data.tar.gz") as archive:
        names = sorted(archive.getnames())
        assert names == ["demand.csv", "distances.csv", "supply.csv"]
        return {
            n: list(csv.DictReader(io.TextIOWrapper(archive.extractfile(n), "utf-8")))  # type: ignore[arg-type]
            for n in names
        }


def test_certificate_proves_the_expected_optimum(data):
    expected = json.loads((JOB / "expected.json").read_text())
    freight = json.loads((JOB / "params.json").read_text())["freight"]
    cert = expected["certificate"]
    supply = {r["plant"]: float(r["capacity"]) for r in data["supply.csv"]}
    demand = {r["market"]: float(r["demand"]) for r in data["demand.csv"]}
    cost = {
        (r["plant"], r["market"]): freight * float(r["distance"]) / 1000
        for r in data["distances.csv"]
    }
    plan = {tuple(k.split(",")): v for k, v in cert["plan"].items()}
    u, v = cert["plant_duals"], cert["market_duals"]
    tol = expected["tolerance"]

    # Primal feasible: known routes, non-negative, capacities kept, demand met.
    assert set(plan) <= set(cost) and min(plan.values()) >= 0
    for p, cap in supply.items():
        assert sum(x for (pp, _), x in plan.items() if pp == p) <= cap + tol
    for m, need in demand.items():
        assert sum(x for (_, mm), x in plan.items() if mm == m) >= need - tol
    # Dual feasible: u_p <= 0 prices capacity, v_m >= 0 prices demand, u_p + v_m <= c_pm.
    assert all(x <= 0 for x in u.values()) and all(x >= 0 for x in v.values())
    for (p, m), c in cost.items():
        assert u[p] + v[m] <= c + tol, (p, m)
    primal = sum(cost[r] * x for r, x in plan.items())
    dual = sum(supply[p] * u[p] for p in supply) + sum(demand[m] * v[m] for m in demand)
    assert abs(primal - expected["objective"]) <= tol
    assert abs(dual - expected["objective"]) <= tol


def test_data_archive_is_rebuilt_byte_for_byte(tmp_path):
    copy = tmp_path / "job"
    copy.mkdir()
    for name in ("make_data.sh",):
        (copy / name).write_bytes((JOB / name).read_bytes())
    (copy / "data").mkdir()
    for csv_file in (JOB / "data").glob("*.csv"):
        (copy / "data" / csv_file.name).write_bytes(csv_file.read_bytes())
    subprocess.run(["bash", str(copy / "make_data.sh")], check=True, capture_output=True)
    assert (copy / "data.tar.gz").read_bytes() == (JOB / "data.tar.gz").read_bytes()


def test_model_contract_names_the_outputs():
    model = tomllib.loads((EXAMPLE / "everest.toml").read_text())["model"]
    assert model["command"] == ["python", "transport.py"]
    assert model["results"] == ["out/*.csv", "out/*.json"]
    assert model["status_prefix"] == "##status "
