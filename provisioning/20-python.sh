#!/usr/bin/env bash
# Python for models: checks the base's python3 against the spec, makes the venv
# and installs the pinned extra Python packages into it.
set -euo pipefail
me=20-python.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_PYTHON_VERSION:?$me: EB_PYTHON_VERSION is not set}"
: "${EB_VENV:?$me: EB_VENV is not set}"
EB_PYTHON_PACKAGES=${EB_PYTHON_PACKAGES:-}
EB_PIP_SOLVERS=${EB_PIP_SOLVERS:-} # installed here too: one pip run (30-solvers.sh finds them)
# A pip cache kept outside the image between local bakes (opt-in); none by default.
EB_PIP_CACHE=${EB_PIP_CACHE:-}
export DEBIAN_FRONTEND=noninteractive
# Wait for a lock held by apt-daily or cloud-init instead of failing at once
# (cloud build VMs; cloud/first-boot.sh waits before the first script).
apt_lock=(-o DPkg::Lock::Timeout=600)
[[ $EB_VENV == /?* ]] || die "EB_VENV='$EB_VENV' must be an absolute path ([python] venv)"

need=()
for pkg in python3 python3-venv; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == 'install ok installed' ]] || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "$me: installing ${need[*]}"
  apt-get "${apt_lock[@]}" update -q || die "apt-get update failed (check the mirror and the network)"
  apt-get "${apt_lock[@]}" install -y -q --no-install-recommends "${need[@]}" || die "apt-get install ${need[*]} failed"
fi

have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $have == "$EB_PYTHON_VERSION" ]] \
  || die "EB_PYTHON_VERSION=$EB_PYTHON_VERSION but this base's python3 is $have; set [python] version = \"$have\" in the image spec, or pick a base whose python3 is $EB_PYTHON_VERSION"

if [[ ! -x $EB_VENV/bin/python ]]; then
  echo "$me: creating the venv $EB_VENV"
  install -d -m 0755 "$(dirname "$EB_VENV")"
  python3 -m venv "$EB_VENV" || die "python3 -m venv $EB_VENV failed"
fi
venv_has=$("$EB_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $venv_has == "$EB_PYTHON_VERSION" ]] \
  || die "$EB_VENV runs Python $venv_has, not $EB_PYTHON_VERSION; remove it and run again"

read -r -a pkgs <<<"$EB_PYTHON_PACKAGES"
for p in "${pkgs[@]}"; do
  [[ $p == ?*==?* ]] || die "Python package '$p' is not pinned; write it as name==version ([python] packages)"
done
read -r -a solvers <<<"$EB_PIP_SOLVERS"
for p in "${solvers[@]}"; do
  [[ $p == ?*==?* ]] || die "pip solver '$p' is not pinned; give the solver a version in the image spec"
done
if ((${#pkgs[@]} + ${#solvers[@]})); then
  # One pip run for the packages and the pip solvers: pip's start and resolve
  # cost seconds each. Pinned requirements already satisfied need no index access.
  cache=(--no-cache-dir)
  [[ -z $EB_PIP_CACHE ]] || cache=(--cache-dir "$EB_PIP_CACHE")
  "$EB_VENV/bin/pip" install "${cache[@]}" --disable-pip-version-check --no-input -q "${pkgs[@]}" "${solvers[@]}" \
    || die "pip install ${pkgs[*]} ${solvers[*]} into $EB_VENV failed (see pip's message above)"
  echo "$me: Python packages: ${pkgs[*]} ${solvers[*]}"
fi

echo "$me: done"
