#!/usr/bin/env bash
# Installs every Debian package that building, running and testing flashtts needs.
# Idempotent: run it as often as you like. Needs root (or sudo) on Debian 12.
#   tools/bootstrap.sh           build + run dependencies
#   tools/bootstrap.sh --test    also the Python reference venv used by the parity tests
set -euo pipefail

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "bootstrap.sh: unknown option '$arg' (known: --test)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

packages=(
  build-essential cmake ninja-build pkg-config git
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libspdlog-dev libtoml11-dev
  nlohmann-json3-dev libcli11-dev libutf8proc-dev libopenblas-dev libcpp-httplib-dev curl
  libsystemd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-zmq python3-msgpack
)
if [ "$want_test" = 1 ]; then
  # The parity tests compare against Hugging Face transformers on CPU torch.
  packages+=(python3 python3-venv python3-pip python3-numpy python3-torch)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "bootstrap: Debian packages already present"
fi

if [ "$want_test" = 1 ]; then
  "$root/tools/setup_reference_venv.sh" || \
    echo "bootstrap: reference venv could not be set up; parity tests will report themselves skipped" >&2
fi
