#!/usr/bin/env bash
# The everest-runtime wheel into the models' venv, its console scripts on PATH.
set -euo pipefail
me=60-runtime.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_STAGING:?$me: EB_STAGING is not set}"
: "${EB_VENV:?$me: EB_VENV is not set}"
[[ -x $EB_VENV/bin/pip ]] || die "$EB_VENV/bin/pip is missing; 20-python.sh makes the venv"

shopt -s nullglob
wheels=("$EB_STAGING"/everest_runtime-*.whl)
shopt -u nullglob
((${#wheels[@]} == 1)) || die "expected one everest_runtime-*.whl in $EB_STAGING, found ${#wheels[@]}"
wheel=${wheels[0]}

# The version number does not change with every edit: compare the wheel itself.
stamp=$EB_VENV/.everbake-runtime-sha256
sum=$(sha256sum "$wheel" | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$sum" ]]; then
  "$EB_VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-input -q \
    --no-index --no-deps --force-reinstall "$wheel" \
    || die "pip install $(basename "$wheel") failed (see pip's message above)"
  echo "$sum" >"$stamp"
  echo "$me: installed $(basename "$wheel")"
fi

for cmd in everest-status everest-bootstrap everest-run-task; do
  [[ -x $EB_VENV/bin/$cmd ]] || die "the runtime wheel did not install $cmd"
  [[ "$(readlink "/usr/local/bin/$cmd" || true)" == "$EB_VENV/bin/$cmd" ]] \
    || ln -sfn "$EB_VENV/bin/$cmd" "/usr/local/bin/$cmd"
done

echo "$me: done"
