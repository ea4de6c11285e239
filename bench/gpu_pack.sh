#!/usr/bin/env bash
# Builds the CUDA programs here (no GPU needed: nvcc compiles, nothing runs)
# and packs them, with the shared libraries the GPU machine's image lacks
# (ZeroMQ, spdlog, OpenBLAS, ...; not glibc, libstdc++ or CUDA's own), into
# .gpu-pack/pack.tar.xz for bench/gpu_suite.sh to run there: that machine
# has CUDA, PyTorch and transformers but not this project's build
# dependencies, and nothing can be installed on it.
#
#   bench/gpu_pack.sh            # then: device run with carry [".gpu-pack"],
#                                #   command "bench/gpu_suite.sh all" (or test, then tts)
# Environment: JOBS (default 2), BUILD (default build-cuda),
# ARCHS (CMAKE_CUDA_ARCHITECTURES; default the project's list).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/${BUILD:-build-cuda}"
archs=()
[[ -n "${ARCHS:-}" ]] && archs=(-DCMAKE_CUDA_ARCHITECTURES="$ARCHS")
tests=(device_fallback_test batch_plan_test cuda_attention_test cuda_parity_test cuda_engine_test cuda_kv_pages_test cuda_offload_test cuda_sampling_test)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHTTS_CUDA=ON "${archs[@]}" >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target flashtts flashtts-mkmodel flashtts-bench-cuda flashtts-bench-tts \
  "${tests[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tests" "$stage/lib"
cp "$build/flashtts" "$build/flashtts-mkmodel" "$build/bench/flashtts-bench-cuda" "$build/bench/flashtts-bench-tts" \
  "$stage/bin/"
for t in "${tests[@]}"; do cp "$build/tests/gpu/$t" "$stage/tests/"; done
# Every shared library the programs load, except the C/C++ runtime (the
# GPU image has newer ones) and CUDA's (the image's match its driver).
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libresolv\.|libnss|libutil\.|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libnvidia)'
for f in "$stage"/bin/* "$stage"/tests/*; do
  ldd "$f" | awk '/=> \//{print $1, $3}'
done | sort -u | while read -r name path; do
  [[ "$name" =~ $skip ]] || cp -L "$path" "$stage/lib/$name"
done
git -C "$root" rev-parse HEAD >"$stage/COMMIT"
mkdir -p "$root/.gpu-pack"
grep -qx '/.gpu-pack/' "$root/.git/info/exclude" 2>/dev/null || echo '/.gpu-pack/' >>"$root/.git/info/exclude"
tar -C "$stage" -cJf "$root/.gpu-pack/pack.tar.xz" .
echo "packed $(du -h "$root/.gpu-pack/pack.tar.xz" | cut -f1) into .gpu-pack/pack.tar.xz (commit $(cat "$stage/COMMIT"))"
