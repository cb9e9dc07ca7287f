#!/usr/bin/env bash
# GLPK (glpsol) from Debian at the spec's version, which 30-solvers.sh passes
# as EB_SOLVER_VERSION after checking this script's sha256.
set -euo pipefail
version=${EB_SOLVER_VERSION:?glpk.sh: EB_SOLVER_VERSION is not set (30-solvers.sh passes the solver version of the image spec)}
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
