#!/usr/bin/env bash
# The C example (examples/c/solve.c) through the C API of the client library,
# against a real `flashtts serve` on the shipped models: no server (exit 3),
# a solve whose answer and result map match `flashtts ask` with the same seed,
# a streamed solve (2n progress events for best_of_n), a server error (exit
# 1, with the protocol's code), bad params (exit 4), a timeout that cancels
# the request on the server (exit 2), and the server still healthy after.
#
# Run by CTest as `client.c_example` with FLASHTTS_BIN set to the build
# folder and the example's path as $1.
set -euo pipefail

example=${1:?usage: test_c_example.sh path/to/flashtts-example-solve}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${FLASHTTS_BIN:?FLASHTTS_BIN must name the build folder}/flashtts
py=/usr/bin/python3
# shellcheck source=../lib/server.sh
source "$root/tests/lib/server.sh"
server_test_setup c-example
ep="ipc://$tmp/sock"
# The JSON value at a key path of the file $1 ("stats.policy_tokens").
json_at() {
  "$py" -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2"
}
# Runs the example; its exit status in $rc, stdout in $tmp/out, stderr in $tmp/err.
run() { rc=0; "$example" --endpoint "$ep" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?; }
problem='Let a = 5. Let b = a * 3. Let c = b - 4. What is c?'

# No server: a clear error within the 3 s connect timeout, exit 3.
run "$problem"
[ "$rc" = 3 ] || fail "no server: exit $rc, $(cat "$tmp/err")"
grep -q "connect error: no flashtts server answers at $ep" "$tmp/err" || fail "no server: $(cat "$tmp/err")"

"$bin" serve --config "$root/configs/default.toml" --endpoint "$ep" >"$tmp/log" 2>&1 &
server=$!
wait_listening "$ep"

# A solve: the answer, its score and the result map, the same as `ask` gives.
run --params '{"n": 4, "seed": 7, "temperature": 0.8}' --json "$problem"
[ "$rc" = 0 ] || fail "solve: exit $rc, $(cat "$tmp/err")"
sed -n 's/^result: //p' "$tmp/out" >"$tmp/result.json"
[ "$(json_at "$tmp/result.json" strategy)" = best_of_n ] || fail "solve: $(cat "$tmp/out")"
[ "$(json_at "$tmp/result.json" n)" = 4 ] || fail "solve: n is not 4: $(cat "$tmp/out")"
answer=$(sed -n 's/^answer: //p' "$tmp/out")
[ "$answer" = "$(json_at "$tmp/result.json" answer)" ] || fail "solve: the answer line differs from the result map"
score=$(sed -n 's/^score: //p' "$tmp/out")
"$py" -c "import sys, json; s = json.load(open(sys.argv[1]))['score']; assert abs(s - float(sys.argv[2])) < 1e-4, (s, sys.argv[2])" \
  "$tmp/result.json" "$score" || fail "solve: the score line differs from the result map"
"$bin" ask --endpoint "$ep" --n 4 --seed 7 --temperature 0.8 --json "$problem" >"$tmp/ask.json" || fail "ask failed"
[ "$(json_at "$tmp/ask.json" answer)" = "$answer" ] || fail "solve: answer '$answer', ask's '$(json_at "$tmp/ask.json" answer)'"
[ "$(json_at "$tmp/ask.json" text)" = "$(json_at "$tmp/result.json" text)" ] || fail "solve: the text differs from ask's"
echo "solve: answer '$answer', score $score"

# Streamed: each progress event reaches the callback, then the answer.
run --params '{"n": 3}' --stream "$problem"
[ "$rc" = 0 ] || fail "streamed solve: exit $rc, $(cat "$tmp/err")"
[ "$(grep -c '^progress: {"kind":' "$tmp/err")" = 6 ] || fail "streamed solve: $(cat "$tmp/err")"
grep -q '^progress events: 6$' "$tmp/err" || fail "streamed solve: event count"
grep -q '^answer: ' "$tmp/out" || fail "streamed solve: no answer"

# A server error: its protocol code and sentence, exit 1.
run --params '{"n": 0}' "$problem"
[ "$rc" = 1 ] || fail "n = 0: exit $rc, $(cat "$tmp/err")"
grep -q '^solve: server error: bad_request: .*n' "$tmp/err" || fail "n = 0: $(cat "$tmp/err")"

# Bad params never reach the server: exit 4 with the reason.
run --params '{"n": ' "$problem"
[ "$rc" = 4 ] || fail "bad JSON: exit $rc"
grep -q '^solve: argument error: params_json is not JSON' "$tmp/err" || fail "bad JSON: $(cat "$tmp/err")"
run --params '[1, 2]' "$problem"
grep -q 'params_json must be a JSON object, not array' "$tmp/err" || fail "a JSON array: $(cat "$tmp/err")"
run --params '{"problem": "other"}' "$problem"
grep -q 'params_json must not hold "problem"' "$tmp/err" || fail "a reserved key: $(cat "$tmp/err")"

# No answer in time: the request is cancelled on the server, exit 2.
run --params '{"n": 64, "strategy": "beam_search"}' --timeout 50 "$problem"
[ "$rc" = 2 ] || fail "timeout: exit $rc, $(cat "$tmp/err")"
grep -q '^solve: timeout error: timed out: no answer within 0.05 s; the request was cancelled on the server' "$tmp/err" \
  || fail "timeout: $(cat "$tmp/err")"

# The server is still fine; SIGTERM stops it with status 0.
run --params '{"n": 2}' "$problem"
[ "$rc" = 0 ] || fail "solve after the errors: exit $rc, $(cat "$tmp/err")"
stop_server client.c_example
