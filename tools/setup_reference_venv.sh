#!/usr/bin/env bash
# Creates .venv-ref: Debian's python3 + python3-torch (CPU), with transformers,
# tokenizers and safetensors from PyPI. This is the independent reference the
# parity tests compare against; nothing on the serving path uses Python.
# Idempotent: an existing, working venv is kept.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv-ref"
# transformers 4.44 is the last line that still runs on Debian 12's torch 1.13.
# openai (the official client) is what the HTTP gateway's test (http.openai)
# points at flashtts; 1.109 runs on Debian 12's Python 3.11.
pins=(transformers==4.44.2 tokenizers==0.19.1 safetensors==0.4.5 jinja2==3.1.4 openai==1.109.1)

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, tokenizers, safetensors, jinja2, openai" 2>/dev/null; then
  echo "setup_reference_venv: $venv is ready"
  exit 0
fi
echo "setup_reference_venv: creating $venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
"$venv/bin/python" -c "import torch, transformers; print('setup_reference_venv: torch', torch.__version__, 'transformers', transformers.__version__)"
