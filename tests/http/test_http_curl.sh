#!/usr/bin/env bash
# The HTTP gateway with curl, against a real `flashtts serve --http
# 127.0.0.1:0` on the shipped models (configs/default.toml): the bound port
# read from the server's output, /health, a solve (plain and streamed as
# Server-Sent Events), OpenAI chat and streamed completions, /metrics moving
# with the requests, JSON errors for bad input, and a clean stop on SIGTERM.
#
# Run by CTest as `http.curl` with FLASHTTS_BIN set to the build folder.
# Exit status 77 (skipped) when curl is missing.
set -euo pipefail

command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${FLASHTTS_BIN:?FLASHTTS_BIN must name the build folder}/flashtts
py=/usr/bin/python3
# shellcheck source=../lib/server.sh
source "$root/tests/lib/server.sh"
server_test_setup http-curl

# The JSON value at a path ('choices.0.text') of the JSON on stdin.
json_at() {
  "$py" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

"$bin" serve --config "$root/configs/default.toml" --endpoint "ipc://$tmp/sock" --http 127.0.0.1:0 >"$tmp/log" 2>&1 &
server=$!
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^flashtts serve: HTTP on \(http:[^ ]*\)$/\1/p' "$tmp/log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || fail "the server printed no HTTP address"
echo "gateway at $url"

# /health: 200 once the models are loaded (503 before).
status=""
for _ in $(seq 100); do
  status=$(curl -s -o "$tmp/health" -w '%{http_code}' "$url/health" || true)
  [ "$status" = 200 ] && break
  [ "$status" = 503 ] || [ "$status" = 000 ] || fail "/health answered $status"
  sleep 0.1
done
[ "$status" = 200 ] || fail "/health never answered 200"
[ "$(json_at status <"$tmp/health")" = ok ] || fail "/health body: $(cat "$tmp/health")"

problem='Let a = 5. Let b = a * 3. Let c = b - 4. What is c?'
# A solve, with the form-data Content-Type that curl -d sends by default.
curl -sf "$url/v1/solve" -d "{\"problem\": \"$problem\", \"n\": 4, \"seed\": 0}" >"$tmp/solve" || fail "solve failed"
[ "$(json_at strategy <"$tmp/solve")" = best_of_n ] || fail "solve: $(cat "$tmp/solve")"
[ "$(json_at n <"$tmp/solve")" = 4 ] || fail "solve: n"
json_at answer <"$tmp/solve" >/dev/null || fail "solve: no answer"
echo "solve: answer $(json_at answer <"$tmp/solve")"

# Streamed: 2n progress events (best_of_n), then the result.
curl -sfN "$url/v1/solve" -H 'Content-Type: application/json' \
  -d "{\"problem\": \"$problem\", \"n\": 3, \"stream\": true}" >"$tmp/stream" || fail "streamed solve failed"
[ "$(grep -c '^event: progress$' "$tmp/stream")" = 6 ] || fail "streamed solve: $(cat "$tmp/stream")"
[ "$(grep -c '^event: result$' "$tmp/stream")" = 1 ] || fail "streamed solve: no result event"
[ "$(tail -n 3 "$tmp/stream" | grep -c '^event: result$')" = 1 ] || fail "streamed solve: the result is not last"

# OpenAI chat, plain, and a search named by 'strategy'.
curl -sf "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"$problem\"}], \"max_tokens\": 40}" \
  >"$tmp/chat" || fail "chat failed"
[ "$(json_at object <"$tmp/chat")" = chat.completion ] || fail "chat: $(cat "$tmp/chat")"
[ "$(json_at choices.0.message.role <"$tmp/chat")" = assistant ] || fail "chat: role"
[ "$(json_at usage.completion_tokens <"$tmp/chat")" -gt 0 ] || fail "chat: usage"
curl -sf "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"messages\": [{\"role\": \"user\", \"content\": \"$problem\"}], \"n\": 4, \"strategy\": \"beam_search\"}" \
  >"$tmp/search" || fail "chat search failed"
[ "$(json_at flashtts.strategy <"$tmp/search")" = beam_search ] || fail "chat search: $(cat "$tmp/search")"

# Streamed completions: chunks, then data: [DONE].
curl -sfN "$url/v1/completions" -H 'Content-Type: application/json' \
  -d "{\"prompt\": \"$problem\", \"max_tokens\": 30, \"temperature\": 0, \"stream\": true}" >"$tmp/cstream" \
  || fail "streamed completions failed"
[ "$(grep -c '^data: {' "$tmp/cstream")" -ge 2 ] || fail "streamed completions: $(cat "$tmp/cstream")"
[ "$(grep '^data: ' "$tmp/cstream" | tail -n 1)" = "data: [DONE]" ] || fail "streamed completions: no [DONE] at the end"

# Bad input: 400 with an OpenAI error object; unknown route: 404.
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "$url/v1/completions" -d '{"prompt": ')
[ "$code" = 400 ] || fail "bad JSON answered $code"
[ "$(json_at error.code <"$tmp/err")" = bad_request ] || fail "bad JSON: $(cat "$tmp/err")"
[ "$(json_at error.type <"$tmp/err")" = invalid_request_error ] || fail "bad JSON: type"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "$url/v1/solve" -d '{"problem": "p", "n": 0}')
[ "$code" = 400 ] || fail "n = 0 answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/nowhere")
[ "$code" = 404 ] || fail "an unknown route answered $code"

# /metrics: the requests above, the server's tokens and KV blocks.
curl -sf "$url/metrics" >"$tmp/metrics" || fail "/metrics failed"
grep -q '^flashtts_http_requests_total{route="/v1/solve",type="solve",status="200",outcome="ok"} 2$' "$tmp/metrics" \
  || fail "metrics: solves not counted: $(grep http_requests_total "$tmp/metrics")"
grep -q '^flashtts_http_requests_total{route="/v1/solve",type="solve",status="400",outcome="bad_request"} 1$' "$tmp/metrics" \
  || fail "metrics: the bad solve not counted"
grep -q '^# TYPE flashtts_http_request_duration_seconds histogram$' "$tmp/metrics" || fail "metrics: no latency histogram"
tokens=$(sed -n 's/^flashtts_policy_tokens_total \([0-9]*\)$/\1/p' "$tmp/metrics")
[ -n "$tokens" ] && [ "$tokens" -gt 0 ] || fail "metrics: policy tokens '$tokens'"
grep -q '^flashtts_kv_blocks{model="prm",state="free"} [1-9]' "$tmp/metrics" || fail "metrics: no PRM KV blocks"
grep -q '^flashtts_actor_up{actor="verifier"} 1$' "$tmp/metrics" || fail "metrics: verifier not up"

# SIGTERM: exit 0 within 5 s.
stop_server http.curl
