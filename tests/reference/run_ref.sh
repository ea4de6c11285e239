#!/usr/bin/env bash
# Runs one reference test with the reference venv's Python; exit 77 (skipped)
# when the venv is missing, so CTest shows the test as skipped, not passed.
py="$1"; shift
if [ ! -x "$py" ] || ! "$py" -c "import torch, transformers, tokenizers" 2>/dev/null; then
  echo "SKIPPED: reference venv $py missing (run tools/setup_reference_venv.sh)"
  exit 77
fi
exec "$py" "$@"
