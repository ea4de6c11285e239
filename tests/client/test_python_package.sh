#!/usr/bin/env bash
# The Python client as a package (tools/python/pyproject.toml): installed
# with pip into a fresh venv from a copy of tools/python (offline: no
# dependencies fetched, Debian's setuptools, pyzmq and msgpack through
# --system-site-packages), its version the project's, imported from the venv
# outside the source tree, and used against a real `flashtts serve`.
#
# Run by CTest as `client.python_package` with FLASHTTS_BIN set to the build
# folder. Exit status 77 (skipped) when venv, pip, setuptools, pyzmq or
# msgpack is missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${FLASHTTS_BIN:?FLASHTTS_BIN must name the build folder}/flashtts
py=/usr/bin/python3
for m in venv ensurepip setuptools zmq msgpack; do
  "$py" -c "import $m" 2>/dev/null || { echo "SKIP: Python module $m is missing (python3-venv, python3-setuptools, python3-zmq, python3-msgpack)"; exit 77; }
done
# shellcheck source=../lib/server.sh
source "$root/tests/lib/server.sh"
server_test_setup pypkg

# pip builds in the folder it is given: a copy keeps the tree clean.
mkdir "$tmp/src"
cp "$root/tools/python/pyproject.toml" "$root/tools/python/flashtts_client.py" "$tmp/src/"
"$py" -m venv --system-site-packages "$tmp/venv" || fail "cannot make a venv"
"$tmp/venv/bin/pip" install --quiet --no-deps --no-build-isolation --no-index "$tmp/src" >"$tmp/pip.log" 2>&1 \
  || { cat "$tmp/pip.log"; fail "pip install failed"; }

want=$(sed -n 's/^project(flashtts VERSION \([0-9.]*\) .*/\1/p' "$root/CMakeLists.txt")
"$bin" serve --config "$root/configs/default.toml" --endpoint "ipc://$tmp/sock" >"$tmp/log" 2>&1 &
server=$!
wait_listening "ipc://$tmp/sock"

# From a folder with no flashtts_client.py: the venv's copy is the one imported.
cd "$tmp"
"$tmp/venv/bin/python" - "$tmp/venv" "$want" "ipc://$tmp/sock" <<'PY' || fail "the installed package does not work"
import importlib.metadata, os, sys
import flashtts_client
from flashtts_client import Client, FlashttsError, NoServerError

venv, want, endpoint = sys.argv[1:4]
where = os.path.realpath(flashtts_client.__file__)
assert where.startswith(os.path.realpath(venv)), f"imported from {where}, not the venv"
version = importlib.metadata.version("flashtts-client")
assert version == want, f"package version {version}, project version {want}"
for name in ("solve", "generate", "score", "ping", "stats", "cancel", "submit", "wait"):
    assert callable(getattr(Client, name, None)), f"Client.{name} is missing"
with Client(endpoint, timeout=120) as c:
    assert c.ping()["pong"] is True
    r = c.solve("Let a = 5. Let b = a * 3. What is b?", n=2, seed=3)
    assert r["n"] == 2 and "answer" in r, r
    try:
        c.solve("p", n=0)
        raise AssertionError("n = 0 was accepted")
    except FlashttsError as e:
        assert e.code == "bad_request", e.code
print(f"flashtts-client {version} from {where}: solve answered {r['answer']!r}")
PY
stop_server client.python_package
