#!/usr/bin/env bash
# Rebuilds data.tar.gz from the CSV files in data/, byte for byte the same
# every time (sorted names, fixed times and owners, no gzip timestamp).
set -euo pipefail
cd "$(dirname "$0")"
tar --create --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  --mode=a+rX,u+w,go-w -C data supply.csv demand.csv distances.csv | gzip -9 -n >data.tar.gz.tmp
mv data.tar.gz.tmp data.tar.gz
echo "data.tar.gz: $(sha256sum data.tar.gz | cut -d' ' -f1)"
