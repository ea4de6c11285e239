#include "runtime/base/request_log.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "messages/msgpack_io.h"
#include "messages/protocol.h"

namespace flashtts {

namespace {

using json = nlohmann::ordered_json;

bool is_solve(const RequestRecord& r) { return r.kind == "solve"; }

// A text value, quoted when it has spaces, quotes or nothing in it.
std::string text_value(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \"\\=\n\t") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c == '\n' ? ' ' : c;
  }
  return q + "\"";
}

// The client's id as JSON: its integer or string, as the client sent it.
json id_json(const std::string& packed) {
  if (packed.empty()) return nullptr;
  json j = json::from_msgpack(packed.begin(), packed.end(), /*strict=*/true, /*allow_exceptions=*/false);
  if (j.is_number() || j.is_string()) return j;
  return msg::id_text(packed);
}

}  // namespace

void read_result_tokens(std::string_view result_map, RequestRecord* r) {
  auto m = msg::MapReader::parse(result_map);
  if (!m) return;
  if (is_solve(*r)) {
    msg::MapReader st;
    if (m->get_opt("stats", &st)) {
      (void)st.get_opt("policy_tokens", &r->policy_tokens);
      (void)st.get_opt("prm_tokens", &r->prm_tokens);
    }
  } else if (r->kind == "generate") {
    std::vector<int32_t> tokens;
    if (m->get_opt("tokens", &tokens)) r->policy_tokens = int64_t(tokens.size());
  } else if (r->kind == "score") {
    (void)m->get_opt("n_tokens", &r->prm_tokens);
  }
}

std::string request_line_text(const RequestRecord& r) {
  char latency[32];
  std::snprintf(latency, sizeof latency, "%.1f", r.latency_ms);
  std::string s = "request rid=" + std::to_string(r.rid) + " id=" + text_value(msg::id_text(r.packed_id)) +
                  " kind=" + text_value(r.kind);
  if (is_solve(r)) s += " strategy=" + text_value(r.strategy) + " n=" + std::to_string(r.n);
  s += " outcome=" + text_value(r.outcome) + " latency_ms=" + latency;
  s += " policy_tokens=" + std::to_string(r.policy_tokens) + " prm_tokens=" + std::to_string(r.prm_tokens);
  if (!r.error.empty()) s += " error=" + text_value(r.error);
  return s;
}

std::string request_line_json(const RequestRecord& r) {
  json j;
  j["event"] = "request";
  j["rid"] = r.rid;
  j["id"] = id_json(r.packed_id);
  j["kind"] = r.kind;
  if (is_solve(r)) {
    j["strategy"] = r.strategy;
    j["n"] = r.n;
  }
  j["outcome"] = r.outcome;
  j["latency_ms"] = std::round(r.latency_ms * 10) / 10;
  j["policy_tokens"] = r.policy_tokens;
  j["prm_tokens"] = r.prm_tokens;
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void log_request(const Logger& log, LogFormat format, const RequestRecord& r) {
  const auto level = r.kind == "stats" ? spdlog::level::debug : spdlog::level::info;
  if (!log->should_log(level)) return;
  log->log(level, "{}", format == LogFormat::json ? request_line_json(r) : request_line_text(r));
}

}  // namespace flashtts
