#!/bin/bash
# A model without everest.toml: run as `bash run-task.sh` in the work directory.
set -euo pipefail
mkdir -p results
echo "##status counting input files"
find "$EVEREST_INPUT_DIR" -type f | wc -l > results/count.txt
echo "model $EVEREST_MODEL_VERSION finished"
