"""Transportation problem solved with HiGHS: ship goods from plants to markets
at least cost, within each plant's capacity and meeting each market's demand.

Inputs ($EVEREST_INPUT_DIR, or --input): supply.csv (plant,capacity),
demand.csv (market,demand), distances.csv (plant,market,distance; thousands of
miles). Shipping one unit costs freight * distance / 1000.
Outputs (working directory): out/solution.csv, out/summary.json, logs/highs.log.
Progress goes to stdout as "##status <text>" lines.
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import highspy

INPUTS = ("supply.csv", "demand.csv", "distances.csv")


def status(text):
    print(f"##status {text}", flush=True)


def read_rows(path, fields):
    if not path.is_file():
        sys.exit(f"{path}: missing; the data archive must hold {', '.join(INPUTS)}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(fields) - set(reader.fieldnames or [])
        if missing:
            sys.exit(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return list(reader)


def load(input_dir):
    plants = read_rows(input_dir / "supply.csv", ["plant", "capacity"])
    markets = read_rows(input_dir / "demand.csv", ["market", "demand"])
    supply = {r["plant"]: float(r["capacity"]) for r in plants}
    demand = {r["market"]: float(r["demand"]) for r in markets}
    distance = {}
    for r in read_rows(input_dir / "distances.csv", ["plant", "market", "distance"]):
        if r["plant"] not in supply or r["market"] not in demand:
            sys.exit(f"distances.csv: unknown plant or market in {r['plant']},{r['market']}")
        distance[r["plant"], r["market"]] = float(r["distance"])
    if sum(supply.values()) < sum(demand.values()):
        sys.exit("the plants cannot meet the total demand: no feasible plan")
    return supply, demand, distance


def solve(supply, demand, distance, freight, integer, time_limit, log_file):
    routes = sorted(distance)
    cost = [freight * distance[r] / 1000 for r in routes]
    h = highspy.Highs()
    h.setOptionValue("log_to_console", False)  # stdout is for status lines
    h.setOptionValue("log_file", str(log_file))
    h.setOptionValue("time_limit", float(time_limit))
    inf = highspy.kHighsInf
    for j, c in enumerate(cost):
        h.addVar(0, inf)
        h.changeColCost(j, c)
        if integer:
            h.changeColIntegrality(j, highspy.HighsVarType.kInteger)
    for plant, capacity in supply.items():  # ship at most the capacity
        cols = [j for j, r in enumerate(routes) if r[0] == plant]
        h.addRow(-inf, capacity, len(cols), cols, [1.0] * len(cols))
    for market, need in demand.items():  # meet the demand
        cols = [j for j, r in enumerate(routes) if r[1] == market]
        h.addRow(need, inf, len(cols), cols, [1.0] * len(cols))
    h.run()
    model_status = h.modelStatusToString(h.getModelStatus())
    if model_status != "Optimal":
        sys.exit(f"HiGHS stopped with status {model_status}")
    values = h.getSolution().col_value
    shipments = [(r, values[j], cost[j]) for j, r in enumerate(routes)]
    return h.getInfo().objective_function_value, shipments, h.version()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_input = Path(os.environ.get("EVEREST_INPUT_DIR", "input"))
    ap.add_argument("--input", type=Path, default=default_input)
    ap.add_argument("--freight", type=float, default=90.0, help="cost per unit per thousand miles")
    ap.add_argument("--integer", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--time-limit", "--time_limit", type=float, default=60.0, dest="time_limit")
    args = ap.parse_args()

    status(f"reading data from {args.input}")
    supply, demand, distance = load(args.input)
    status(f"solving: {len(supply)} plants, {len(demand)} markets, {len(distance)} routes")
    Path("out").mkdir(exist_ok=True)
    Path("logs").mkdir(exist_ok=True)
    log = Path("logs/highs.log")
    objective, shipments, version = solve(
        supply, demand, distance, args.freight, args.integer, args.time_limit, log
    )
    with open("out/solution.csv", "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["plant", "market", "shipment", "unit_cost"])
        for (plant, market), amount, unit_cost in shipments:
            if amount > 1e-9:
                out.writerow([plant, market, f"{amount:g}", f"{unit_cost:g}"])
    summary = {
        "objective": round(objective, 9),
        "status": "optimal",
        "solver": f"HiGHS {version}",
        "integer": args.integer,
        "freight": args.freight,
        "shipped": sum(a for _, a, _ in shipments),
    }
    Path("out/summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    status(f"optimal: cost {objective:g}")


if __name__ == "__main__":
    main()
