#include "runtime/http_metrics.h"

#include <optional>
#include <tuple>
#include <vector>

namespace flashtts::http {

using prom::Labels;
using prom::PromText;
using prom::Type;

void GatewayMetrics::record(const std::string& route, const std::string& type, int status, const std::string& outcome,
                            double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{route, type, status, outcome}];
  auto key = std::make_pair(route, type);
  auto it = latency_.find(key);
  if (it == latency_.end()) it = latency_.emplace(key, prom::Histogram(prom::Histogram::latency_bounds())).first;
  it->second.observe(seconds);
}

void GatewayMetrics::write(PromText& out) const {
  std::lock_guard lock(mu_);
  out.family("flashtts_http_requests_total", Type::kCounter,
             "HTTP requests the gateway answered, by route, protocol request type, HTTP status and outcome (ok or "
             "the error code).");
  for (const auto& [k, n] : requests_) {
    const auto& [route, type, status, outcome] = k;
    out.sample("flashtts_http_requests_total",
               {{"route", route}, {"type", type}, {"status", std::to_string(status)}, {"outcome", outcome}}, double(n));
  }
  out.family("flashtts_http_request_duration_seconds", Type::kHistogram,
             "Time from an HTTP request's arrival to the end of its response (a stream's last event), by route and "
             "protocol request type.");
  for (const auto& [k, h] : latency_)
    h.write(out, "flashtts_http_request_duration_seconds", {{"route", k.first}, {"type", k.second}});
  out.family("flashtts_http_requests_in_flight", Type::kGauge, "HTTP requests being answered now.");
  out.sample("flashtts_http_requests_in_flight", {}, double(in_flight_.load()));
}

namespace {

const char* kActors[] = {"intake", "beam_manager", "scheduler", "generator", "verifier", "memory_arbiter"};

// The number at `key` of `m`, if it is one.
std::optional<double> num(const json& m, const char* key) {
  if (!m.is_object() || !m.contains(key) || !m[key].is_number()) return std::nullopt;
  return m[key].get<double>();
}

struct Family {
  const char* name;
  Type type;
  const char* help;
};

// Writes `f` with one sample per (labels, actor map, key) that has a number.
void emit(PromText& out, const Family& f, const std::vector<std::tuple<Labels, const json*, const char*>>& rows) {
  bool any = false;
  for (const auto& [labels, m, key] : rows) {
    auto v = num(*m, key);
    if (!v) continue;
    if (!any) out.family(f.name, f.type, f.help);
    any = true;
    out.sample(f.name, labels, *v);
  }
}

}  // namespace

void write_server_stats(PromText& out, const json& stats) {
  out.family("flashtts_server_up", Type::kGauge, "1 when the server answered the gateway's stats request.");
  out.sample("flashtts_server_up", {}, 1);

  static const json kEmpty = json::object();
  const json& actors = stats.contains("actors") && stats["actors"].is_object() ? stats["actors"] : kEmpty;
  auto actor = [&](const char* a) -> const json& { return actors.contains(a) ? actors[a] : kEmpty; };
  out.family("flashtts_actor_up", Type::kGauge,
             "1 for each actor that answered the stats request, 0 for one that did not within 2 s.");
  for (const char* a : kActors) {
    if (actors.contains(a)) out.sample("flashtts_actor_up", {{"actor", a}}, 1);
  }
  if (stats.contains("missing") && stats["missing"].is_array())
    for (const auto& m : stats["missing"])
      if (m.is_string()) out.sample("flashtts_actor_up", {{"actor", m.get<std::string>()}}, 0);

  const json& in = actor("intake");
  const json& bm = actor("beam_manager");
  const json& sch = actor("scheduler");
  const json& gen = actor("generator");
  const json& ver = actor("verifier");
  const json& mem = actor("memory_arbiter");
  const json& sg = sch.contains("generator") ? sch["generator"] : kEmpty;
  const json& sv = sch.contains("verifier") ? sch["verifier"] : kEmpty;
  Labels policy = {{"model", "policy"}}, prm = {{"model", "prm"}};

  emit(out, {"flashtts_policy_tokens_total", Type::kCounter, "Tokens the policy model generated."},
       {{{}, &gen, "tokens_generated"}});
  emit(out, {"flashtts_prm_tokens_total", Type::kCounter, "Tokens the PRM read (scored)."},
       {{{}, &ver, "tokens_scored"}});
  emit(out,
       {"flashtts_prm_tokens_computed_total", Type::kCounter,
        "Tokens the PRM computed (read, less those served from its KV cache)."},
       {{{}, &ver, "tokens_computed"}});
  emit(out, {"flashtts_prefill_tokens_total", Type::kCounter, "Prompt tokens the policy model prefilled."},
       {{{}, &gen, "prefill_tokens"}});
  for (const char* state : {"used", "free", "cached"}) {
    std::string key = std::string("kv_blocks_") + state;
    Labels lp = policy, lv = prm;
    lp.emplace_back("state", state);
    lv.emplace_back("state", state);
    emit(out,
         {"flashtts_kv_blocks", Type::kGauge,
          "KV-cache blocks per model and state: used by running sequences, free, or cached (kept for prefix "
          "reuse)."},
         {{lp, &gen, key.c_str()}, {lv, &ver, key.c_str()}});
  }
  emit(out, {"flashtts_kv_blocks_total", Type::kGauge, "KV-cache blocks per model."},
       {{policy, &gen, "kv_blocks_total"}, {prm, &ver, "kv_blocks_total"}});
  emit(out, {"flashtts_kv_blocks_peak", Type::kGauge, "Most KV-cache blocks in use at once per model."},
       {{policy, &gen, "kv_blocks_peak"}, {prm, &ver, "kv_blocks_peak"}});
  emit(out, {"flashtts_kv_evictions_total", Type::kCounter, "Cached KV blocks evicted per model."},
       {{policy, &gen, "evictions"}, {prm, &ver, "evictions"}});
  emit(out,
       {"flashtts_kv_recomputed_tokens_total", Type::kCounter,
        "Tokens of full KV blocks a model computed again after evicting them."},
       {{policy, &gen, "recomputed_tokens"}, {prm, &ver, "recomputed_tokens"}});
  emit(out, {"flashtts_prefix_hit_rate", Type::kGauge, "Share of context tokens found in a model's prefix cache."},
       {{policy, &gen, "prefix_hit_rate"}, {prm, &ver, "prefix_hit_rate"}});
  emit(out, {"flashtts_preemptions_total", Type::kCounter, "Sequences preempted for KV memory per model."},
       {{policy, &gen, "preemptions"}, {prm, &ver, "preemptions"}});
  emit(out,
       {"flashtts_queue_depth", Type::kGauge,
        "Work waiting: in the scheduler's queues (queue=scheduler) and in each engine's batch (queue=engine)."},
       {{{{"queue", "scheduler"}, {"model", "policy"}}, &sg, "queued"},
        {{{"queue", "scheduler"}, {"model", "prm"}}, &sv, "queued"},
        {{{"queue", "engine"}, {"model", "policy"}}, &gen, "queued"},
        {{{"queue", "engine"}, {"model", "prm"}}, &ver, "queued"}});
  emit(out, {"flashtts_jobs_in_flight", Type::kGauge, "Jobs the scheduler has dispatched to a model and not had back."},
       {{policy, &sg, "inflight"}, {prm, &sv, "inflight"}});
  emit(out, {"flashtts_sequences_running", Type::kGauge, "Sequences in a model's running batch."},
       {{policy, &gen, "running"}, {prm, &ver, "running"}});
  emit(out, {"flashtts_spec_jobs_total", Type::kCounter, "Speculative beam-extension jobs the generator ran."},
       {{{}, &gen, "spec_jobs"}});
  emit(out, {"flashtts_spec_tokens_total", Type::kCounter, "Tokens generated by speculative jobs."},
       {{{}, &gen, "spec_tokens"}});
  emit(out, {"flashtts_spec_stopped_total", Type::kCounter, "Speculative jobs ended before their natural end."},
       {{{}, &gen, "spec_stopped"}});
  emit(out,
       {"flashtts_spec_held_total", Type::kCounter,
        "Admission rounds that held a speculative job back for the cost bound."},
       {{{}, &gen, "spec_held"}});
  emit(out, {"flashtts_live_requests", Type::kGauge, "Requests in flight at the intake (all clients)."},
       {{{}, &in, "live_requests"}});
  emit(out, {"flashtts_server_requests_total", Type::kCounter, "Messages the intake read (all clients)."},
       {{{}, &in, "requests"}});
  emit(out,
       {"flashtts_server_replies_total", Type::kCounter,
        "Final replies of the intake, by outcome (result, error, or rejected before any work)."},
       {{{{"outcome", "result"}}, &in, "results"},
        {{{"outcome", "error"}}, &in, "errors"},
        {{{"outcome", "rejected"}}, &in, "rejected"}});
  emit(out, {"flashtts_clients_gone_total", Type::kCounter, "Clients whose connection closed with work in flight."},
       {{{}, &in, "clients_gone"}});
  emit(out, {"flashtts_searches_total", Type::kCounter, "Requests the beam manager finished, by outcome."},
       {{{{"outcome", "completed"}}, &bm, "completed"},
        {{{"outcome", "failed"}}, &bm, "failed"},
        {{{"outcome", "cancelled"}}, &bm, "cancelled"}});
  emit(out, {"flashtts_memory_bytes", Type::kGauge, "The memory arbiter's budget and its split, in bytes."},
       {{{{"part", "budget"}}, &mem, "budget_bytes"},
        {{{"part", "weights"}, {"model", "policy"}}, &mem, "generator_weight_bytes"},
        {{{"part", "weights"}, {"model", "prm"}}, &mem, "verifier_weight_bytes"},
        {{{"part", "kv"}, {"model", "policy"}}, &mem, "generator_kv_bytes"},
        {{{"part", "kv"}, {"model", "prm"}}, &mem, "verifier_kv_bytes"}});
}

void write_server_down(PromText& out) {
  out.family("flashtts_server_up", Type::kGauge, "1 when the server answered the gateway's stats request.");
  out.sample("flashtts_server_up", {}, 0);
}

}  // namespace flashtts::http
