#!/usr/bin/env bash
# GitHub Actions: turn key secrets (GCP_SA_KEY, YC_SA_KEY: JSON text) into the key
# files the SDKs and Packer read, under the runner's temporary dir (0600, never in
# the checkout), and export their paths. A missing secret is left missing:
# `invoke check --provider P` then says what to set.
set -euo pipefail
umask 077
dir=${RUNNER_TEMP:?not on a GitHub runner}/everbake-keys
mkdir -p "$dir"
if [[ -n ${GCP_SA_KEY:-} ]]; then
  printf '%s' "$GCP_SA_KEY" >"$dir/gcp.json"
  echo "GOOGLE_APPLICATION_CREDENTIALS=$dir/gcp.json" >>"$GITHUB_ENV"
fi
if [[ -n ${YC_SA_KEY:-} ]]; then
  printf '%s' "$YC_SA_KEY" >"$dir/yandex.json"
  echo "YC_SERVICE_ACCOUNT_KEY_FILE=$dir/yandex.json" >>"$GITHUB_ENV"
fi
