"""A tiny transport model for the everest-runtime README and tests.

Greedy shipping from supplies to demands at the cheapest cost per unit. Reads
work/input/costs.csv when present (rows: source,sink,cost), writes out/flows.csv
and out/summary.json, and reports progress with '##status ' lines.
"""

import argparse
import csv
import json
import os
import signal
import sys
import time

stop = False


def on_term(signum, frame):
    global stop
    stop = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--supply", type=float, action="append", default=[])
    parser.add_argument("--demand", type=float, action="append", default=[])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--no-verbose", dest="verbose", action="store_false")
    parser.add_argument("--fail", type=int, default=0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_term)

    supply = args.supply or [20.0, 30.0]
    demand = args.demand or [10.0, 25.0, 15.0]
    costs = {}
    path = os.path.join(os.environ.get("EVEREST_INPUT_DIR", "input"), "costs.csv")
    if os.path.exists(path):
        with open(path) as f:
            for source, sink, cost in csv.reader(f):
                costs[int(source), int(sink)] = float(cost)
    os.makedirs("out", exist_ok=True)
    os.makedirs("logs", exist_ok=True)
    flows = []
    left, need = list(supply), list(demand)
    for i in range(args.iterations):
        if stop:
            print("##status stopping early: terminated", flush=True)
            break
        print(f"##status iteration {i + 1} of {args.iterations}", flush=True)
        time.sleep(args.sleep)
    pairs = sorted(
        (costs.get((s, d), 1.0 + s + d), s, d) for s in range(len(left)) for d in range(len(need))
    )
    total = 0.0
    for cost, s, d in pairs:
        amount = min(left[s], need[d])
        if amount > 0:
            left[s] -= amount
            need[d] -= amount
            total += amount * cost
            flows.append((s, d, amount))
    with open("out/flows.csv", "w", newline="") as f:
        csv.writer(f).writerows([("source", "sink", "amount"), *flows])
    with open("out/summary.json", "w") as f:
        json.dump({"cost": total, "complete": not stop}, f)
    with open("logs/model.log", "w") as f:
        f.write(f"verbose={args.verbose} flows={len(flows)}\n")
    print(f"total cost {total:g}")
    print(f"##status done: cost {total:g}", flush=True)
    if args.fail:
        print("failing on request", file=sys.stderr)
    return args.fail


if __name__ == "__main__":
    sys.exit(main())
