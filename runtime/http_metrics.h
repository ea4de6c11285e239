// What `GET /metrics` of the HTTP gateway reports (docs/http.md): the
// gateway's own counts (requests by route, protocol request type and
// outcome; latency histograms; requests in flight), and the server's
// counters from a `stats` request turned into Prometheus families (tokens,
// KV blocks per model, queue depths, preemptions, speculative tokens,
// per-actor liveness).
//
// Thread contract: GatewayMetrics is thread-safe (one mutex); the free
// functions are pure.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "runtime/http_json.h"
#include "runtime/prometheus.h"

namespace flashtts::http {

class GatewayMetrics {
 public:
  // One HTTP request that ended: its route ("/v1/solve"), the protocol
  // request it ran ("solve", "generate", "ping", "stats"; "" for none), its
  // HTTP status, its outcome ("ok" or the error code) and its latency.
  void record(const std::string& route, const std::string& type, int status, const std::string& outcome,
              double seconds);
  void started() { in_flight_.fetch_add(1); }
  void ended() { in_flight_.fetch_sub(1); }

  void write(prom::PromText& out) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int, std::string>, uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, prom::Histogram> latency_;
  std::atomic<int64_t> in_flight_{0};
};

// The families made from a stats reply's result ({"actors": {...},
// "missing": [...]}), with flashtts_server_up 1.
void write_server_stats(prom::PromText& out, const json& stats);
// flashtts_server_up 0 and why, when no stats reply came.
void write_server_down(prom::PromText& out);

}  // namespace flashtts::http
