#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, and show what
# test-time scaling does with the whole actor pipeline in one process
# (`flashtts demo`): greedy decoding beside beam search with the PRM on a
# problem picked for it, then the accuracy of both on a dozen fresh problems.
# Extra arguments go to `flashtts demo` (e.g. --n 8, --dataset FILE).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/bootstrap.sh"
"$root/tools/build.sh"
for m in policy prm; do
  if [ ! -f "$root/models/$m/config.json" ]; then
    echo "run.sh: models/$m/config.json is missing: the shipped models are part of this repository" \
         "(git checkout -- models/)" >&2
    exit 1
  fi
done
exec "$root/build/flashtts" demo "$@"
