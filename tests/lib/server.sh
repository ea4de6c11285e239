# Sourced by the shell tests that run a real `flashtts serve` (tests/http,
# tests/client, tests/install): a temporary folder, a server pid that is
# killed on exit, a failure that shows the server's log, and the clean stop.
#
#   source "$root/tests/lib/server.sh"; server_test_setup NAME
#   ... "$bin" serve ... >"$tmp/log" 2>&1 & server=$!
#   wait_listening ENDPOINT   # its "listening on ENDPOINT" line, within 30 s
#   stop_server NAME      # SIGTERM: gone within 5 s with exit status 0
#
# Sets `tmp` (removed on exit) and `server` (empty, or the pid to kill).

server_test_setup() {
  tmp=$(mktemp -d "/tmp/flashtts-$1.XXXXXX")
  server=""
  trap 'server_test_cleanup' EXIT
}

server_test_cleanup() {
  if [ -n "$server" ]; then kill -9 "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}

fail() {
  echo "FAIL: $*"
  if [ -f "$tmp/log" ]; then
    echo "--- server log"
    cat "$tmp/log"
  fi
  exit 1
}

wait_listening() {
  for _ in $(seq 300); do
    grep -q "^flashtts serve: listening on $1\$" "$tmp/log" && return 0
    kill -0 "$server" 2>/dev/null || fail "the server exited"
    sleep 0.1
  done
  fail "the server did not start listening on $1 within 30 s"
}

stop_server() {
  kill -TERM "$server"
  for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$server" 2>/dev/null && fail "the server did not stop within 5 s of SIGTERM"
  local rc=0
  wait "$server" || rc=$?
  server=""
  [ "$rc" = 0 ] || fail "the server exited with $rc after SIGTERM"
  echo "PASS: $1"
}
