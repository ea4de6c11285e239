#!/usr/bin/env bash
# The client library links only ZeroMQ (and the C/C++ runtimes): no engine,
# no spdlog, OpenBLAS, CUDA, HTTP or tokenizer library (ldd), no engine,
# actor or runtime code inside it and nothing of its JSON code exported (nm),
# and it exports the whole C API of include/flashtts/flashtts.h and the C++
# client (runtime/client.h). Its SONAME carries the major version.
#
# Run by CTest as `client.library` with the library's path as $1.
set -euo pipefail

lib=${1:?usage: test_client_library.sh path/to/libflashtts_client.so}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fail() { echo "FAIL: $*"; exit 1; }
[ -f "$lib" ] || fail "no library at $lib"

# Linked libraries: libzmq (and what it needs), the C/C++ runtimes; nothing else.
deps=$(ldd "$lib")
echo "$deps"
grep -q 'libzmq\.so' <<<"$deps" || fail "the client library does not link libzmq"
for bad in spdlog fmt openblas blas cublas cudart cuda httplib utf8proc ssl gtest; do
  if grep -qi "lib$bad" <<<"$(readelf -d "$lib" | grep NEEDED)"; then
    fail "the client library links lib$bad: $(readelf -d "$lib" | grep NEEDED | tr -s ' ')"
  fi
done
# Its direct needs, exactly: what ldd lists may come in through libzmq.
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "NEEDED: $needed"
for n in $needed; do
  case "$n" in
    libzmq.so.*|libstdc++.so.*|libm.so.*|libgcc_s.so.*|libc.so.*) ;;
    *) fail "the client library needs $n directly" ;;
  esac
done
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "$soname" =~ ^libflashtts_client\.so\.[0-9]+$ ]] || fail "SONAME is '$soname'"

# Exported symbols.
syms=$(nm -DC --defined-only "$lib")
for fn in $(sed -n 's/^FLASHTTS_API [^(]*[ *]\(flashtts_[a-z_]*\)(.*/\1/p' "$root/include/flashtts/flashtts.h"); do
  grep -q " T $fn\$" <<<"$syms" || fail "the C API function $fn is not exported"
done
[ "$(grep -c ' T flashtts_' <<<"$syms")" -ge 8 ] || fail "fewer than 8 C API functions exported"
for cxx in 'flashtts::Client::connect(' 'flashtts::Client::call(' 'flashtts::msg::MapReader::parse(' \
           'flashtts::msg::MapWriter::put('; do
  grep -qF "$cxx" <<<"$syms" || fail "the C++ client's $cxx is not exported"
done
grep -q 'nlohmann' <<<"$syms" && fail "JSON internals are exported: $(grep nlohmann <<<"$syms" | head -3)"
# Nothing of the engine, the actors or the app, defined or referenced.
all=$(nm -C "$lib" 2>/dev/null || nm -DC "$lib")
for bad in 'flashtts::Engine' 'flashtts::Tokenizer' 'flashtts::KvCache' 'flashtts::Supervisor' \
           'flashtts::Mailbox' 'flashtts::load_config' 'flashtts::Intake' 'flashtts::Generator' \
           'flashtts::Verifier' 'flashtts::Scheduler' 'flashtts::BeamManager' 'spdlog::' 'httplib::' 'cblas_'; do
  grep -qF "$bad" <<<"$all" && fail "the client library holds $bad: $(grep -F "$bad" <<<"$all" | head -2)"
done
# Every flashtts:: function it defines is the client's or the messages'.
stray=$(grep -E ' [TW] ' <<<"$syms" | grep -oE '\bflashtts::[A-Za-z_]+(::[A-Za-z_]+)?' | sort -u |
        grep -vE '^flashtts::(Client|ServerFrame|Pong|Expected|Error|Status|make_error|seconds_text|msg)(::|$)' || true)
[ -z "$stray" ] || fail "the client library exports code outside the client and messages layers: $stray"
echo "PASS: client.library ($(grep -c ' T flashtts_' <<<"$syms") C functions, SONAME $soname)"
