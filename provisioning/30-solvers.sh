#!/usr/bin/env bash
# Solvers as the spec lists them: pip pins into the venv, apt pins, and staged
# install scripts that must match their sha256 before they run.
set -euo pipefail
me=30-solvers.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_STAGING:?$me: EB_STAGING is not set}"
: "${EB_VENV:?$me: EB_VENV is not set}"
EB_PIP_SOLVERS=${EB_PIP_SOLVERS:-}
EB_APT_SOLVERS=${EB_APT_SOLVERS:-}
EB_SCRIPT_SOLVERS=${EB_SCRIPT_SOLVERS:-}
export DEBIAN_FRONTEND=noninteractive
# Wait for a lock held by apt-daily or cloud-init instead of failing at once
# (cloud build VMs; cloud/first-boot.sh waits before the first script).
apt_lock=(-o DPkg::Lock::Timeout=600)

read -r -a pip_pins <<<"$EB_PIP_SOLVERS"
if ((${#pip_pins[@]})); then
  [[ -x $EB_VENV/bin/pip ]] || die "$EB_VENV/bin/pip is missing; 20-python.sh makes the venv"
  for p in "${pip_pins[@]}"; do
    [[ $p == ?*==?* ]] || die "pip solver '$p' is not pinned; give the solver a version in the image spec"
  done
  # 20-python.sh installs them with the [python] packages; pip runs here only for
  # what is missing (a venv made before that, or a failed run).
  mapfile -t missing_pins < <("$EB_VENV/bin/python" - "${pip_pins[@]}" <<'PY'
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name, version = pin.split("==", 1)
    try:
        if metadata.version(name.split("[")[0]) == version:
            continue
    except metadata.PackageNotFoundError:
        pass
    print(pin)
PY
  )
  if ((${#missing_pins[@]})); then
    "$EB_VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-input -q "${missing_pins[@]}" \
      || die "pip install ${missing_pins[*]} failed (see pip's message above)"
  fi
  echo "$me: pip: ${pip_pins[*]}"
fi

read -r -a apt_pins <<<"$EB_APT_SOLVERS"
missing=()
for p in "${apt_pins[@]}"; do
  [[ $p == ?*=?* ]] || die "apt solver '$p' is not pinned; give the solver a version in the image spec"
  installed=$(dpkg-query -W -f='${Status} ${Version}' "${p%%=*}" 2>/dev/null || true)
  [[ $installed == "install ok installed ${p#*=}" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get "${apt_lock[@]}" update -q || die "apt-get update failed (check the mirror and the network)"
  apt-get "${apt_lock[@]}" install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed; is that version in the base's apt sources? (apt-cache policy ${missing[0]%%=*})"
fi
((${#apt_pins[@]} == 0)) || echo "$me: apt: ${apt_pins[*]}"

read -r -a scripts <<<"$EB_SCRIPT_SOLVERS"
for entry in "${scripts[@]}"; do
  # name=<sha256>=<version>: the script installs the spec's version, so the
  # version pin lives in one place (the image spec).
  IFS='=' read -r name want version <<<"$entry"
  [[ $name =~ ^[A-Za-z0-9_.-]+$ && $want =~ ^[0-9a-f]{64}$ && -n $version ]] \
    || die "EB_SCRIPT_SOLVERS entry '$entry' is not name=<64 hex sha256>=<version>"
  script=$EB_STAGING/solvers/$name.sh
  [[ -f $script ]] || die "solver script $script is not staged"
  got=$(sha256sum "$script" | cut -d' ' -f1)
  [[ $got == "$want" ]] \
    || die "solver script $name.sh has sha256 $got, the spec pins $want; check the script, then update sha256 in the image spec"
  echo "$me: script: $name.sh (sha256 ok)"
  EB_SOLVER_VERSION=$version bash "$script" || die "solver script $name.sh failed"
done

echo "$me: done"
