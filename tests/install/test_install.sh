#!/usr/bin/env bash
# The installed package (cmake/install.cmake, docs/client.md): `cmake
# --install` into a temporary prefix, which is then moved (every installed
# path must be relative to the prefix); the installed `flashtts serve` with
# the installed config, which must find the installed models; a fresh CMake
# project outside the tree that find_package()s flashtts and links
# flashtts::client from C (the C example) and C++ (runtime/client.h); the C
# example again, compiled with the flags of the pkg-config file; all three
# solving against the installed server.
#
# Run by CTest as `install.package` with the build folder as $1.
set -euo pipefail

build=${1:?usage: test_install.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; exit 77; }
# shellcheck source=../lib/server.sh
source "$root/tests/lib/server.sh"
server_test_setup install

cmake --install "$build" --prefix "$tmp/staged" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install failed"; }
mv "$tmp/staged" "$tmp/prefix"
p=$tmp/prefix
for f in bin/flashtts share/flashtts/configs/default.toml share/flashtts/models/policy/config.json \
         share/flashtts/models/prm/model.safetensors include/flashtts/flashtts.h include/flashtts/runtime/client.h \
         include/flashtts/runtime/base/status.h include/flashtts/messages/msgpack_io.h share/doc/flashtts/examples/solve.c; do
  [ -f "$p/$f" ] || fail "$f is not installed"
done
libdir=$(dirname "$(find "$p" -name 'libflashtts_client.so.*.*.*' | head -n 1)")
[ -f "$libdir/libflashtts_client.so" ] || fail "no libflashtts_client.so in the prefix: $(find "$p" -name '*.so*')"
[ -f "$libdir/cmake/flashtts/flashtts-config.cmake" ] || fail "no CMake package under $libdir/cmake/flashtts"
[ -f "$libdir/pkgconfig/flashtts-client.pc" ] || fail "no pkg-config file under $libdir/pkgconfig"
# Nothing installed may point back into the source or build tree.
if grep -rlI -e "$(cd "$build" && pwd)" "$p" >"$tmp/leaks"; then fail "installed files name the build folder: $(cat "$tmp/leaks")"; fi

# The installed server on the installed config and models.
ep="ipc://$tmp/sock"
"$p/bin/flashtts" serve --endpoint "$ep" >"$tmp/log" 2>&1 &
server=$!

# A project of its own, as a user would write it.
mkdir "$tmp/proj"
cp "$p/share/doc/flashtts/examples/solve.c" "$tmp/proj/solve.c"
cat >"$tmp/proj/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(uses_flashtts LANGUAGES C CXX)
find_package(flashtts 0.1 REQUIRED)
add_executable(c_solve solve.c)
target_link_libraries(c_solve PRIVATE flashtts::client)
add_executable(cxx_solve main.cpp)
set_target_properties(cxx_solve PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_link_libraries(cxx_solve PRIVATE flashtts::client)
CMAKE
cat >"$tmp/proj/main.cpp" <<'CPP'
// The C++ client from the installed headers: ping, then one solve.
#include <cstdio>
#include <string>

#include <zmq.hpp>

#include "runtime/client.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  zmq::context_t ctx;
  auto c = flashtts::Client::connect(ctx, argv[1], std::chrono::milliseconds(5000));
  if (!c) {
    std::fprintf(stderr, "%s\n", c.error().message.c_str());
    return 3;
  }
  flashtts::msg::MapWriter fields;
  fields.put("problem", argv[2]).put("n", int64_t(3)).put("seed", int64_t(5));
  auto r = c->call("solve", fields, std::chrono::milliseconds(60000));
  if (!r) {
    std::fprintf(stderr, "%s\n", r.error().message.c_str());
    return 1;
  }
  std::string answer, strategy;
  int64_t n = 0;
  if (!r->body.get("answer", &answer).ok() || !r->body.get("strategy", &strategy).ok() || !r->body.get("n", &n).ok())
    return 4;
  std::printf("answer: %s\nstrategy: %s, n = %lld\n", answer.c_str(), strategy.c_str(), (long long)n);
  return 0;
}
CPP
cmake -S "$tmp/proj" -B "$tmp/proj/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$p" \
  >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "the project that finds flashtts does not configure"; }
cmake --build "$tmp/proj/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "the project that finds flashtts does not build"; }
# It used the prefix alone, nothing of this source tree.
grep -q -e "-I$p/include" -e "-isystem $p/include" "$tmp/proj/build/build.ninja" || fail "the project does not include from the prefix"
if grep -q "$root" "$tmp/proj/build/build.ninja"; then fail "the project's build names the source tree $root"; fi

# The C example with pkg-config's flags, from the moved prefix.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs flashtts-client) || fail "pkg-config does not know flashtts-client"
[ "$(pkg-config --modversion flashtts-client)" = "$(sed -n 's/^project(flashtts VERSION \([0-9.]*\) .*/\1/p' "$root/CMakeLists.txt")" ] \
  || fail "pkg-config version $(pkg-config --modversion flashtts-client)"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror "$tmp/proj/solve.c" $flags -o "$tmp/c_solve_pc" || fail "the C example does not build with: $flags"

wait_listening "$ep"

problem='Let a = 5. Let b = a * 3. Let c = b - 4. What is c?'
# CMake gave the programs an RPATH to the prefix; the pkg-config build needs the loader told.
# (grep without -q: under pipefail, -q can end the pipe early and ldd dies of SIGPIPE.)
ldd "$tmp/proj/build/c_solve" | grep "$libdir/libflashtts_client.so.0" > /dev/null || fail "c_solve loads another library: $(ldd "$tmp/proj/build/c_solve" | grep flashtts)"
"$tmp/proj/build/c_solve" --endpoint "$ep" --params '{"n": 2}' "$problem" >"$tmp/out1" 2>"$tmp/err1" || fail "c_solve: $(cat "$tmp/err1")"
grep -q '^answer: ' "$tmp/out1" && grep -q '^score: ' "$tmp/out1" || fail "c_solve: $(cat "$tmp/out1")"
"$tmp/proj/build/cxx_solve" "$ep" "$problem" >"$tmp/out2" 2>"$tmp/err2" || fail "cxx_solve: $(cat "$tmp/err2")"
grep -q '^strategy: best_of_n, n = 3$' "$tmp/out2" || fail "cxx_solve: $(cat "$tmp/out2")"
LD_LIBRARY_PATH="$libdir" "$tmp/c_solve_pc" --endpoint "$ep" --json "$problem" >"$tmp/out3" 2>"$tmp/err3" || fail "c_solve (pkg-config): $(cat "$tmp/err3")"
grep -q '^result: {.*"answer":' "$tmp/out3" || fail "c_solve (pkg-config): $(cat "$tmp/out3")"
cat "$tmp/out1" "$tmp/out2"

stop_server install.package
