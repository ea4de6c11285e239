#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, and solve a
# problem with the whole actor pipeline in one process (`flashtts run`).
# Extra arguments go to `flashtts run` (e.g. --n 8 --json).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/bootstrap.sh"
"$root/tools/build.sh"
prompt="Let a = 5. Let b = a * 3. Let c = b - 4. What is c?"
for m in policy prm; do
  if [ ! -f "$root/models/$m/config.json" ]; then
    echo "run.sh: models/$m/config.json is missing: the shipped models are part of this repository" \
         "(git checkout -- models/)" >&2
    exit 1
  fi
done
exec "$root/build/flashtts" run "$@" "$prompt"
