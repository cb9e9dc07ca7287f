#!/usr/bin/env bash
# Proves the image works before it is saved: every solver the spec lists
# imports and solves a tiny LP and MIP to the known optimum, and the runtime
# answers --version.
set -euo pipefail
me=80-verify.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_VENV:?$me: EB_VENV is not set}"
EB_VERIFY_SOLVERS=${EB_VERIFY_SOLVERS:-}
[[ -x $EB_VENV/bin/python ]] || die "$EB_VENV/bin/python is missing; 20-python.sh makes the venv"

read -r -a solvers <<<"$EB_VERIFY_SOLVERS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for solver in "${solvers[@]}"; do
  (cd "$work" && "$EB_VENV/bin/python" - "$solver" <<'PY') || die "solver $solver failed its check (see above)"
# LP:  max 3x + 2y  s.t. x + y <= 4, x + 3y <= 6, x <= 3         -> 11 at (3, 1)
# MIP: max 5x + 4y  s.t. 6x + 4y <= 24, x + 2y <= 6, x, y integer -> 20 at (4, 0)
#      (its LP relaxation gives 21, so a solver ignoring integrality fails)
import re, subprocess, sys

name = sys.argv[1]
LP = ("3 x + 2 y", [("x + y", 4), ("x + 3 y", 6), ("x", 3)], 11.0)
MIP = ("5 x + 4 y", [("6 x + 4 y", 24), ("x + 2 y", 6)], 20.0)


def coeffs(expr):
    out = {}
    for term in expr.split(" + "):
        parts = term.split()
        out[parts[-1]] = float(parts[0]) if len(parts) == 2 else 1.0
    return out


def lp_file(problem, integer, path):
    obj, rows, _ = problem
    lines = ["Maximize", f" obj: {obj}", "Subject To"]
    lines += [f" c{i}: {lhs} <= {rhs}" for i, (lhs, rhs) in enumerate(rows)]
    if integer:
        lines += ["General", " x y"]
    open(path, "w").write("\n".join(lines + ["End", ""]))


def highs(problem, integer):
    import highspy
    obj, rows, _ = problem
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    names = ["x", "y"]
    for _ in names:
        h.addVar(0, highspy.kHighsInf)
    for j, c in enumerate(names):
        h.changeColCost(j, coeffs(obj).get(c, 0.0))
        if integer:
            h.changeColIntegrality(j, highspy.HighsVarType.kInteger)
    for lhs, rhs in rows:
        cs = coeffs(lhs)
        idx = [names.index(c) for c in cs]
        h.addRow(-highspy.kHighsInf, rhs, len(idx), idx, [cs[c] for c in cs])
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    if status != "Optimal":
        sys.exit(f"highs: status {status}")
    return h.getInfo().objective_function_value


def scip(problem, integer):
    import pyscipopt
    obj, rows, _ = problem
    m = pyscipopt.Model()
    m.hideOutput()
    v = {c: m.addVar(c, vtype="I" if integer else "C", lb=0) for c in ("x", "y")}
    m.setObjective(sum(k * v[c] for c, k in coeffs(obj).items()), "maximize")
    for lhs, rhs in rows:
        m.addCons(sum(k * v[c] for c, k in coeffs(lhs).items()) <= rhs)
    m.optimize()
    if m.getStatus() != "optimal":
        sys.exit(f"scip: status {m.getStatus()}")
    return m.getObjVal()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{cmd[0]} exited {p.returncode}: {p.stdout[-500:]}{p.stderr[-500:]}")
    return p.stdout


def cbc(problem, integer):
    lp_file(problem, integer, "p.lp")
    run(["cbc", "p.lp", "solve", "solution", "p.sol"])
    first = open("p.sol").readline()
    m = re.match(r"Optimal - objective value\s+(\S+)", first)
    if not m:
        sys.exit(f"cbc: {first.strip()}")
    return float(m.group(1))


def glpk(problem, integer):
    lp_file(problem, integer, "p.lp")
    run(["glpsol", "--lp", "p.lp", "-o", "p.out"])
    report = open("p.out").read()
    if not re.search(r"Status:\s+(INTEGER )?OPTIMAL", report):
        sys.exit("glpk: not optimal:\n" + report[:400])
    return float(re.search(r"Objective:\s+obj = (\S+)", report).group(1))


solve = {"highs": highs, "cbc": cbc, "scip": scip, "glpk": glpk}.get(name)
if solve is None:
    sys.exit(f"80-verify.sh: no check for solver {name!r} (known: highs, cbc, scip, glpk); add one")
for label, problem, integer in (("LP", LP, False), ("MIP", MIP, True)):
    got = solve(problem, integer)
    if abs(got - problem[2]) > 1e-6:
        sys.exit(f"{name}: {label} objective {got}, expected {problem[2]}")
    print(f"80-verify.sh: {name}: {label} objective {got:g} (expected {problem[2]:g})")
PY
done
((${#solvers[@]})) || echo "$me: no solvers to check"

# The agent's own package must compile and import with the agent's interpreter, so
# code its Python cannot run fails here, not when Everest shows the resource offline.
EB_AGENT_ARCHIVE=${EB_AGENT_ARCHIVE:-}
if [[ -n $EB_AGENT_ARCHIVE ]]; then
  : "${EB_AGENT_DIR:?$me: EB_AGENT_DIR is not set}"
  agent_py=$EB_AGENT_DIR/venv/bin/python
  [[ -x $agent_py ]] || die "$agent_py is missing; 50-agent.sh makes the agent's venv"
  agent_version=$("$agent_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  # Byte-compiled into $work so the image gets no __pycache__ from the check.
  (cd "$EB_AGENT_DIR" && PYTHONPYCACHEPREFIX=$work/pycache "$agent_py" -m compileall -q everest_agent) \
    || die "the agent's package does not compile with Python $agent_version (see above); use a base whose Python the agent supports"
  (cd "$EB_AGENT_DIR" && PYTHONDONTWRITEBYTECODE=1 "$agent_py" -c 'import everest_agent, everest_agent.start') \
    || die "the agent's package does not import with Python $agent_version (see above)"
  echo "$me: agent: everest_agent compiles and imports with Python $agent_version"
fi

version=$(/usr/local/bin/everest-run-task --version) || die "everest-run-task --version failed"
[[ -n $version ]] || die "everest-run-task --version printed nothing"
echo "$me: runtime: $version"
echo "$me: done"
