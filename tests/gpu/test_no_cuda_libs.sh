#!/usr/bin/env bash
# One binary for every machine (gpu/cuda_plugin.h, docs/cuda.md): a build
# with the CUDA backend starts and solves on the CPU where no CUDA library can
# be found.
#
#   1. Neither the binary nor the engine library needs a CUDA library
#      (readelf's NEEDED entries): only libflashtts_cuda.so does.
#   2. In a mount namespace of its own, the folders the loader finds
#      libcudart and libcublas in are hidden under empty tmpfs mounts; there
#      `flashtts run` with device = "auto" says in one line that the CUDA
#      backend could not be loaded, naming the missing library, and solves on
#      the CPU; device = "cuda" is an error saying the same.
#   3. With the libraries in place the backend loads, and (on a machine with
#      no GPU) the reason names the driver or the device instead.
#
# Run by CTest as `gpu.no_cuda_libs` with the build folder as $1. Step 2
# needs `unshare --mount` (root, or user namespaces); it reports itself
# skipped (77) where that is refused, after step 1 passed.
set -euo pipefail

build=$(cd "${1:?usage: test_no_cuda_libs.sh BUILD_DIR}" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$build/flashtts
# shellcheck source=../lib/server.sh
source "$root/tests/lib/server.sh"  # tmp (removed on exit) and fail; no server runs here
server_test_setup nocuda

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
for f in "$bin" "$build/libflashtts_engine.so"; do
  if needed "$f" | grep -E '^lib(cuda|cudart|cublas|cublasLt)\.' >"$tmp/cu"; then
    fail "$f links $(tr '\n' ' ' <"$tmp/cu")"
  fi
done
needed "$bin" | grep -qx libflashtts_engine.so || fail "$bin does not link libflashtts_engine.so: $(needed "$bin" | tr '\n' ' ')"
plugin=$build/libflashtts_cuda.so
if [ ! -f "$plugin" ]; then
  echo "SKIP: this build has no CUDA backend (FLASHTTS_CUDA=OFF or no toolkit); checked that nothing links CUDA"
  exit 77
fi
needed "$plugin" | grep -q '^libcublas\.' || fail "$plugin does not link cuBLAS: $(needed "$plugin" | tr '\n' ' ')"

# A config of the shipped models on device "auto" (and one on "cuda").
mkdir -p "$tmp/configs"
ln -s "$root/models" "$tmp/models"
sed 's/^device = .*/device = "auto"/' "$root/configs/default.toml" >"$tmp/configs/auto.toml"
sed 's/^device = .*/device = "cuda"/' "$root/configs/default.toml" >"$tmp/configs/cuda.toml"
grep -q '^device = "auto"' "$tmp/configs/auto.toml" || fail "configs/default.toml has no top-level device key"
problem='Let a = 5. Let b = a * 3. Let c = b - 4. What is c?'

# 3 first: the libraries are there, so the backend loads and the reason is
# about the machine, or a GPU is used.
"$bin" run --quiet --config "$tmp/configs/auto.toml" "$problem" >"$tmp/out0" 2>"$tmp/err0" || fail "run: $(cat "$tmp/err0")"
if grep -q "the CUDA backend (.*) could not be loaded" "$tmp/err0"; then fail "the backend did not load with the libraries present: $(cat "$tmp/err0")"; fi

# 2: hide every folder the loader finds a CUDA library in.
dirs=$(ldd "$plugin" | sed -n 's/^\s*lib\(cudart\|cublas\|cublasLt\)\.so[^ ]* => \(\/[^ ]*\) .*/\2/p' |
  while read -r lib; do dirname "$lib"; dirname "$(readlink -f "$lib")"; done | sort -u)
[ -n "$dirs" ] || fail "ldd does not show where libcublas comes from: $(ldd "$plugin")"
cat >"$tmp/hidden.sh" <<SH
set -e
for d in $(echo $dirs); do mount -t tmpfs none "\$d"; done
"$bin" run --quiet --config "$tmp/configs/auto.toml" "$problem" >"$tmp/out1" 2>"$tmp/err1"
echo \$? >"$tmp/rc1"
set +e
"$bin" run --quiet --config "$tmp/configs/cuda.toml" "$problem" >"$tmp/out2" 2>"$tmp/err2"
echo \$? >"$tmp/rc2"
SH
if ! unshare --mount --map-root-user true 2>/dev/null && ! unshare --mount true 2>/dev/null; then
  echo "SKIP: unshare --mount is refused here; checked that nothing but libflashtts_cuda.so links CUDA"
  exit 77
fi
if unshare --mount true 2>/dev/null; then ns=(unshare --mount); else ns=(unshare --mount --map-root-user); fi
"${ns[@]}" bash "$tmp/hidden.sh" || fail "run without CUDA libraries failed: $(cat "$tmp/err1" 2>/dev/null)"
[ "$(cat "$tmp/rc1")" = 0 ] || fail "run on device auto exited $(cat "$tmp/rc1"): $(cat "$tmp/err1")"
grep -q "^answer: " "$tmp/out1" || fail "no answer: $(cat "$tmp/out1")"
# The same work as with the libraries present: both ran on the CPU (or the
# first on a GPU, which may sample differently).
if ! grep -q "CUDA: " "$tmp/err0"; then
  [ "$(grep "^answer: " "$tmp/out0")" = "$(grep "^answer: " "$tmp/out1")" ] || fail "another answer: $(cat "$tmp/out0" "$tmp/out1")"
fi
grep "device 'auto': the CUDA backend (.*libflashtts_cuda.so) could not be loaded: lib\(cudart\|cublas\|cublasLt\)\.so\.[0-9]*: cannot open shared object file.*; running on the CPU" \
  "$tmp/err1" >/dev/null || fail "no fallback line naming the missing library: $(cat "$tmp/err1")"
[ "$(cat "$tmp/rc2")" != 0 ] || fail "device cuda without CUDA libraries did not fail: $(cat "$tmp/out2")"
grep -q "device 'cuda' is not available: the CUDA backend (.*) could not be loaded: lib" "$tmp/err2" ||
  fail "device cuda: the error does not name the library: $(cat "$tmp/err2")"
echo "--- without CUDA libraries (hidden: $(echo $dirs))"
grep "device 'auto'" "$tmp/err1"
head -n 3 "$tmp/out1"
grep "device 'cuda'" "$tmp/err2"
