#!/usr/bin/env bash
# The image's package list, read from the image itself (not from the spec):
# every installed Debian package and every Python distribution of the models'
# venv (and of the agent's venv, when there is one) with its version, as
# /etc/everest/packages.json. Each task's provenance.json copies it, the build
# record holds it, and `invoke diff-images` compares two of them.
set -euo pipefail
me=85-packages.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_VENV:?$me: EB_VENV is not set}"
EB_AGENT_DIR=${EB_AGENT_DIR:-}
[[ -x $EB_VENV/bin/python ]] || die "$EB_VENV/bin/python is missing; 20-python.sh makes the venv"
agent_py=""
if [[ -n $EB_AGENT_DIR && -x $EB_AGENT_DIR/venv/bin/python ]]; then
  agent_py=$EB_AGENT_DIR/venv/bin/python
fi

install -d -m 0755 /etc/everest
debian=$(mktemp)
trap 'rm -f "$debian"' EXIT
dpkg-query -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\n' >"$debian" \
  || die "dpkg-query failed; is this a Debian root?"
PYTHONDONTWRITEBYTECODE=1 "$EB_VENV/bin/python" - "$debian" "$agent_py" <<'PY' \
  || die "could not write /etc/everest/packages.json (see above)"
import json, os, re, subprocess, sys

LIST = r"""
import json, re
from importlib import metadata
out = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        out[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
print(json.dumps(out))
"""


def python_dists(python):
    done = subprocess.run([python, "-c", LIST], capture_output=True, text=True, check=True)
    return dict(sorted(json.loads(done.stdout).items()))


debian = {}
with open(sys.argv[1]) as f:
    for line in f:
        status, name, version = line.rstrip("\n").split("\t")
        if status.startswith("ii"):  # installed, not merely known
            debian[name] = version
doc = {"format": 1, "debian": dict(sorted(debian.items())), "python": python_dists(sys.executable)}
if sys.argv[2]:
    doc["agent_python"] = python_dists(sys.argv[2])
tmp = "/etc/everest/.packages.json.part"
with open(tmp, "w") as f:
    json.dump(doc, f, indent=2, sort_keys=True)
    f.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, "/etc/everest/packages.json")
print(f"85-packages.sh: {len(doc['debian'])} Debian packages, {len(doc['python'])} Python "
      "distributions in /etc/everest/packages.json")
PY
