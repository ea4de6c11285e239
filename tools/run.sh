#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, and solve a
# problem with the whole actor pipeline in one process (`flashtts run`).
# Extra arguments go to `flashtts run` (e.g. --n 8 --json).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/bootstrap.sh"
"$root/tools/build.sh"
prompt="Let a = 5. Let b = a * 3. Let c = b - 4. What is c?"
if [ -f "$root/models/policy/config.json" ] && [ -f "$root/models/prm/config.json" ]; then
  exec "$root/build/flashtts" run "$@" "$prompt"
fi
# Until the trained tiny models ship under models/, the demo runs on a
# random-weight Qwen2 policy and Qwen2 PRM that our own tool writes: every
# code path is real, the text is meaningless.
demo="$root/build/demo"
for pair in policy:qwen2 prm:qwen2-prm; do
  name=${pair%%:*} arch=${pair##*:}
  if [ ! -f "$demo/$name/config.json" ]; then
    "$root/build/flashtts-mkmodel" --out "$demo/$name" --arch "$arch" --hidden 256 --layers 4 --heads 8 \
      --kv-heads 2 --intermediate 768 --vocab 2048 --seed 1 >/dev/null
  fi
done
sed -e "s|^policy = .*|policy = \"$demo/policy\"|" -e "s|^prm = .*|prm = \"$demo/prm\"|" \
  -e "s|^max_tokens_per_step = 128|max_tokens_per_step = 24|" -e "s|^max_steps = 8|max_steps = 2|" \
  "$root/configs/default.toml" > "$demo/demo.toml"
exec "$root/build/flashtts" run --config "$demo/demo.toml" "$@" "$prompt"
