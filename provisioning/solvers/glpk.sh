#!/usr/bin/env bash
# GLPK (glpsol) from Debian at a pinned version. Run by 30-solvers.sh after
# its sha256 check, so the pin below is covered by the spec's sha256.
set -euo pipefail
version=5.0-1
export DEBIAN_FRONTEND=noninteractive
if [[ "$(dpkg-query -W -f='${Status} ${Version}' glpk-utils 2>/dev/null || true)" == "install ok installed $version" ]]; then
  echo "glpk.sh: glpk-utils $version already installed"
  exit 0
fi
apt-get update -q || { echo "glpk.sh: apt-get update failed" >&2; exit 1; }
apt-get install -y -q --no-install-recommends "glpk-utils=$version" \
  || { echo "glpk.sh: apt-get install glpk-utils=$version failed (apt-cache policy glpk-utils)" >&2; exit 1; }
# sed reads to the end: under pipefail, `head` could make glpsol die of SIGPIPE.
glpsol --version | sed -n 1p
