#!/usr/bin/env bash
# Configures and builds flashtts into build/ (Release). Extra arguments go to
# CMake's configure step, e.g. tools/build.sh -DFLASHTTS_BUILD_BENCH=OFF
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$root/build" -j"$(nproc)"
