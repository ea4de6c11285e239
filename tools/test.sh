#!/usr/bin/env bash
# Sets up everything the tests need (Debian packages, the Hugging Face
# reference venv), builds, and runs the whole suite through CTest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/bootstrap.sh" --test
"$root/tools/build.sh"
cd "$root/build"
ctest --output-on-failure -j2 --timeout 1200
