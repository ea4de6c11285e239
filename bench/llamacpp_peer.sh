#!/usr/bin/env bash
# llama.cpp on the same model folder as flashtts-bench-engine: a peer figure
# tool only, never part of the build or the tests, and no project dependency.
#
#   bench/llamacpp_peer.sh MODEL_DIR [THREADS]
#
# Makes (once) a venv of its own at build/venv-llamacpp with Debian's python:
# llama-cpp-python, which compiles llama.cpp from source (CPU only, native,
# no BLAS), plus gguf and numpy. Converts MODEL_DIR (a Qwen2/Llama HF folder,
# e.g. from build/flashtts-mkmodel) to GGUF f32 and bf16 under
# build/llamacpp-peer/ with bench/llamacpp_peer.py, checks each against
# transformers' logits where a transformers python is found, and prints
# prefill (512-token prompt) and batch-1 decode tokens/s for each.
set -euo pipefail

[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 MODEL_DIR [THREADS]" >&2; exit 2; }
model=$(realpath "$1")
threads=${2:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/build/venv-llamacpp
out=$root/build/llamacpp-peer
py=$venv/bin/python
pins=(llama-cpp-python==0.3.36 gguf==0.19.0 numpy==2.4.6)

if ! "$py" -c 'import gguf, numpy, llama_cpp; assert llama_cpp.__version__ == "0.3.36"' 2>/dev/null; then
  echo "== creating $venv with /usr/bin/python3"
  /usr/bin/python3 -m venv "$venv"
  echo "== building llama.cpp from source (llama-cpp-python, CPU only, native): takes ~8 minutes on 2 cores"
  start=$SECONDS
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$py" -m pip install --no-cache-dir --no-binary llama-cpp-python "${pins[@]}"
  echo "== built in $((SECONDS - start)) s"
fi

mkdir -p "$out"
name=$(basename "$model")
table=()
for dtype in f32 bf16; do
  gguf=$out/$name-$dtype.gguf
  echo "== converting $model to $gguf"
  "$py" "$root/bench/llamacpp_peer.py" convert --model "$model" --out "$gguf" --dtype "$dtype"
  "$py" "$root/bench/llamacpp_peer.py" check --model "$model" --gguf "$gguf" --threads "$threads"
  echo "== benchmarking $dtype, $threads threads (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  res=$("$py" "$root/bench/llamacpp_peer.py" bench --gguf "$gguf" --threads "$threads")
  echo "$res"
  prefill=$(sed -n 's/^prefill [0-9]* tok: //p' <<<"$res")
  decode=$(sed -n 's/^decode b=1: //p' <<<"$res")
  table+=("| $dtype | $threads | $prefill | $decode |")
done

llama_version=$("$py" -c 'import llama_cpp; print(llama_cpp.__version__)')
echo
echo "llama.cpp (llama-cpp-python $llama_version) on $model"
echo "| dtype | threads | prefill (512 tok) | decode b=1 |"
echo "|---|---|---|---|"
printf '%s\n' "${table[@]}"
