#!/usr/bin/env bash
# Everything issue 6 must run on a GPU, in one device call, results under $OUT:
#   env.txt    nvidia-smi, nvcc, driver, the commit
#   tests.txt  every GPU test program (gtest output, then a pass/fail/skip count)
#   sanitizer.txt  compute-sanitizer memcheck on the GPU tests, racecheck on attention
#   bench.txt  flashtts-bench-cuda on random-weight folders of the real shapes
#              (Qwen2.5-Math-1.5B, Skywork-o1-PRM-1.5B; 7B with FLASHTTS_BENCH_7B=1),
#              and the 1.5B policy's decode beside the PRM's prefill (--overlap-with)
#   hf.txt     Hugging Face transformers on the same folders (batch 1 and 64)
#   results.json  the bench and transformers rows, for docs/performance.md
#   tts.txt, tts.jsonl, tts.md  (tts only) issues 21-23 on the device: the
#              math-trace beam search, baseline / speculation / flashtts, on
#              1.5B + 1.5B PRM shapes in the paper's 24 GB edge budget
#              (N from TTS_N, default 8,32,128,512; TTS_7B=1 adds the 1.5B + 7B
#              PRM memory-pressure cell, issue 22's edge setting; TTS_DEVICE=sim:rtx4090
#              rehearses it without a GPU)
#   suite.log  everything, in order
#
# Usage: bench/gpu_suite.sh [all|test|bench|tts]   (default all; tts is not in all:
# with 15 minutes of device time, run `test` first, then `tts` in a second call)
# Binaries come from .gpu-pack/pack.tar.xz (bench/gpu_pack.sh, run on the
# development machine and carried) or, when absent, are built here with
# -DCMAKE_CUDA_ARCHITECTURES=native (needs the project's build dependencies),
# also when the packed binaries cannot start there.
# A test that reports SKIPPED on a GPU machine means the device was not found:
# the summary flags it as a failure of the run.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-all}
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
log="$OUT/suite.log"
: >"$log"
say() { echo "== $*" | tee -a "$log"; }
run() { "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 ))s"; }

say "environment"
{
  date -u
  echo "commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
} | tee "$OUT/env.txt" >>"$log"

# Binaries: the carried pack, else (or when the packed ones cannot start) a build here.
BIN="" TESTS=""
if [[ -f "$root/.gpu-pack/pack.tar.xz" ]]; then
  pack=/tmp/flashtts-pack
  rm -rf "$pack" && mkdir -p "$pack" && tar -C "$pack" -xJf "$root/.gpu-pack/pack.tar.xz"
  echo "pack built at commit $(cat "$pack/COMMIT")" | tee -a "$OUT/env.txt" "$log"
  cuda_libs=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$pack/lib:/usr/local/cuda/lib64:${cuda_libs}:${LD_LIBRARY_PATH:-}"
  if "$pack/bin/flashtts-bench-cuda" --help >/dev/null 2>&1 && "$pack/tests/batch_plan_test" >/dev/null 2>&1; then
    BIN="$pack/bin" TESTS="$pack/tests"
  else
    echo "packed binaries do not start here:" | tee -a "$log"
    ldd "$pack/bin/flashtts-bench-cuda" 2>&1 | grep -E "not found|version" | tee -a "$log"
  fi
fi
if [[ -z "$BIN" ]]; then
  say "building here (-DCMAKE_CUDA_ARCHITECTURES=native): $(elapsed)"
  run cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHTTS_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=native || { echo "configure failed" | tee -a "$log"; exit 1; }
  run cmake --build "$root/build-gpu" -j"$(nproc)" || { echo "build failed" | tee -a "$log"; exit 1; }
  BIN="$root/build-gpu" TESTS="$root/build-gpu/tests/gpu"
  ln -sf "$root/build-gpu/bench/flashtts-bench-cuda" "$BIN/flashtts-bench-cuda"
  ln -sf "$root/build-gpu/bench/flashtts-bench-tts" "$BIN/flashtts-bench-tts"
fi
for p in "$BIN/flashtts-mkmodel" "$BIN/flashtts-bench-cuda"; do
  ldd "$p" | grep -q "not found" && { echo "missing libraries for $p:"; ldd "$p" | grep "not found"; } | tee -a "$log"
done

if [[ "$what" == all || "$what" == test ]]; then
  say "GPU tests: $(elapsed)"
  : >"$OUT/tests.txt"
  pass=0 fail=0 skip=0
  for t in "$TESTS"/*_test; do
    name=$(basename "$t")
    echo "--- $name" >>"$OUT/tests.txt"
    timeout 600 "$t" --gtest_color=no >"$OUT/.t" 2>&1
    rc=$?
    cat "$OUT/.t" >>"$OUT/tests.txt"
    cat "$OUT/.t" >>"$log"
    n_pass=$(grep -c '^\[       OK \]' "$OUT/.t")
    # gtest lists failed and skipped tests twice (as they end, and at the end): count names once.
    n_fail=$(grep '^\[  FAILED  \] [A-Za-z]' "$OUT/.t" | sed 's/ (.*//' | sort -u | wc -l)
    n_skip=$(grep '^\[  SKIPPED \] [A-Za-z]' "$OUT/.t" | sed 's/ (.*//' | sort -u | wc -l)
    [[ $rc -ne 0 && $n_fail -eq 0 ]] && n_fail=1  # a crash or a timeout
    pass=$((pass + n_pass)) fail=$((fail + n_fail)) skip=$((skip + n_skip))
    echo "$name: rc $rc, $n_pass passed, $n_fail failed, $n_skip skipped" | tee -a "$log" "$OUT/tests.txt"
  done
  rm -f "$OUT/.t"
  echo "TOTAL: $pass passed, $fail failed, $skip skipped (on a GPU machine, skipped = the device was not found)" |
    tee -a "$OUT/tests.txt" "$log"

  say "compute-sanitizer: $(elapsed)"
  : >"$OUT/sanitizer.txt"
  if command -v compute-sanitizer >/dev/null; then
    for t in cuda_attention_test cuda_parity_test cuda_engine_test cuda_kv_pages_test cuda_offload_test cuda_sampling_test; do
      echo "--- memcheck $t" | tee -a "$OUT/sanitizer.txt" "$log"
      timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$TESTS/$t" --gtest_color=no \
        >>"$OUT/sanitizer.txt" 2>&1
      echo "memcheck $t: rc $?" | tee -a "$OUT/sanitizer.txt" "$log"
    done
    echo "--- racecheck cuda_attention_test" | tee -a "$OUT/sanitizer.txt" "$log"
    timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 "$TESTS/cuda_attention_test" \
      --gtest_filter='*F32*' --gtest_color=no >>"$OUT/sanitizer.txt" 2>&1
    echo "racecheck cuda_attention_test: rc $?" | tee -a "$OUT/sanitizer.txt" "$log"
  else
    echo "compute-sanitizer not found" | tee -a "$OUT/sanitizer.txt" "$log"
  fi
fi

if [[ "$what" == all || "$what" == bench ]]; then
  models=/tmp/flashtts-models
  presets=(qwen2.5-math-1.5b skywork-prm-1.5b)
  [[ "${FLASHTTS_BENCH_7B:-0}" == 1 ]] && presets+=(qwen2.5-math-7b skywork-prm-7b)
  : >"$OUT/bench.txt"
  : >"$OUT/hf.txt"
  jsons=()
  for p in "${presets[@]}"; do
    say "model $p: $(elapsed)"
    [[ -f "$models/$p/config.json" ]] || run "$BIN/flashtts-mkmodel" --preset "$p" --dtype bf16 --out "$models/$p" ||
      { echo "mkmodel $p failed" | tee -a "$log"; continue; }
    say "flashtts-bench-cuda $p: $(elapsed)"
    echo "--- $p" >>"$OUT/bench.txt"
    timeout 420 "$BIN/flashtts-bench-cuda" --model "$models/$p" --json "/tmp/bench-$p.json" 2>&1 |
      tee -a "$OUT/bench.txt" >>"$log"
    [[ -f "/tmp/bench-$p.json" ]] && jsons+=("/tmp/bench-$p.json")
    say "transformers $p: $(elapsed)"
    echo "--- $p" >>"$OUT/hf.txt"
    timeout 420 env PYTHONUNBUFFERED=1 python3 "$root/bench/hf_transformers.py" --model "$models/$p" \
      --json "/tmp/hf-$p.json" 2>&1 | tee -a "$OUT/hf.txt" >>"$log"
    [[ -f "/tmp/hf-$p.json" ]] && jsons+=("/tmp/hf-$p.json")
  done
  # How much of the device a decode and a prefill get at once on two streams
  # (the simulated card serializes them: docs/sim.md, "The timeline").
  prms=(skywork-prm-1.5b)
  [[ "${FLASHTTS_BENCH_7B:-0}" == 1 ]] && prms+=(skywork-prm-7b)
  for q in "${prms[@]}"; do
    [[ -f "$models/qwen2.5-math-1.5b/config.json" && -f "$models/$q/config.json" ]] || continue
    say "overlap qwen2.5-math-1.5b + $q: $(elapsed)"
    echo "--- overlap qwen2.5-math-1.5b + $q" >>"$OUT/bench.txt"
    timeout 300 "$BIN/flashtts-bench-cuda" --model "$models/qwen2.5-math-1.5b" --batches 64 --steps 8 \
      --overlap-with "$models/$q" --json "/tmp/overlap-$q.json" 2>&1 | tee -a "$OUT/bench.txt" >>"$log"
    [[ -f "/tmp/overlap-$q.json" ]] && jsons+=("/tmp/overlap-$q.json")
  done
  python3 - "$OUT/results.json" "${jsons[@]}" <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
json.dump([dict(json.load(open(f)), source=f) for f in files], open(out, "w"), indent=1)
PY
fi
if [[ "$what" == tts ]]; then
  models=/tmp/flashtts-models
  presets=(qwen2.5-math-1.5b skywork-prm-1.5b)
  [[ "${TTS_7B:-0}" == 1 ]] && presets+=(skywork-prm-7b)
  for p in "${presets[@]}"; do
    say "model $p: $(elapsed)"
    [[ -f "$models/$p/config.json" ]] || run "$BIN/flashtts-mkmodel" --preset "$p" --dtype bf16 --out "$models/$p" ||
      { echo "mkmodel $p failed" | tee -a "$log"; exit 1; }
  done
  : >"$OUT/tts.txt"
  # Every N of one variant set in one process; a cell's lines reach tts.jsonl
  # as its runs end, so a timeout keeps the cells before it.
  tts() {  # seconds, then flashtts-bench-tts arguments
    local limit=$1
    shift
    timeout "$limit" "$BIN/flashtts-bench-tts" --workload math-trace --device "${TTS_DEVICE:-cuda}" --rounds 1 \
      --config "$root/configs/default.toml" --trace-table "$root/bench/data/math500_step_lengths.tsv" \
      --policy "$models/qwen2.5-math-1.5b" --json "$OUT/tts.jsonl" --md "$OUT/tts.md" "$@" 2>&1 |
      tee -a "$OUT/tts.txt" >>"$log"
    echo "flashtts-bench-tts: rc ${PIPESTATUS[0]}" | tee -a "$OUT/tts.txt" "$log"
  }
  say "tts: speculation and flashtts vs baseline, 1.5B + 1.5B PRM, 24 GB: $(elapsed)"
  tts "${TTS_TIMEOUT:-420}" --prm "$models/skywork-prm-1.5b" --budget-mb 24576 \
    --variants baseline,speculation,flashtts --n "${TTS_N:-8,32,128,512}"
  if [[ "${TTS_7B:-0}" == 1 ]]; then
    say "tts: prefix vs fifo under memory pressure, 1.5B + 7B PRM, 24 GB: $(elapsed)"
    tts "${TTS_7B_TIMEOUT:-300}" --prm "$models/skywork-prm-7b" --budget-mb 24576 \
      --variants baseline,prefix,flashtts --n 64 --memory 25,50
  fi
fi
say "done: $(elapsed)"
summary() {  # file, pattern
  [[ -s "$OUT/$1" ]] && { echo "=== $1"; grep -E "$2" "$OUT/$1" | tail -40; }
}
summary tests.txt '^TOTAL|: rc [0-9]'
summary sanitizer.txt ': rc [0-9]|ERROR SUMMARY'
summary bench.txt '^(---|device:|measured:|model:|prefill|decode|what|graphs|overlap)'
summary hf.txt '^(---|device:|prefill|decode|what)'
summary tts.txt '^(\| |flashtts-bench-tts: rc|beam_search|.*paired)'
