#include "messages/internal.h"

namespace flashtts::msg {

namespace {

// A nested map carried as msgpack bytes; an empty string travels as {}.
void put_map(MapWriter& w, std::string_view key, const std::string& packed) {
  if (packed.empty()) w.put(key, MapWriter());
  else w.put_raw(key, packed);
}

Status get_map(const MapReader& r, std::string_view key, std::string* out) {
  MapReader m;
  FLASHTTS_TRY(r.get(key, &m));
  *out = m.bytes();
  return Status::success();
}

}  // namespace

void Start::write(MapWriter& w) const {
  w.put("rid", rid).put("kind", kind);
  MapWriter p;
  if (kind == "solve") solve.write(p);
  else if (kind == "generate") generate.write(p);
  else score.write(p);
  w.put("params", p);
}

Status Start::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("kind", &kind));
  MapReader p;
  FLASHTTS_TRY(r.get("params", &p));
  if (kind == "solve") return solve.read(p);
  if (kind == "generate") return generate.read(p);
  if (kind == "score") return score.read(p);
  return make_error("unknown kind '" + kind + "'");
}

void Reply::write(MapWriter& w) const {
  w.put("rid", rid).put("ok", ok);
  if (ok) put_map(w, "result", result);
  else w.put("code", code).put("message", message);
}

Status Reply::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("ok", &ok));
  if (ok) return get_map(r, "result", &result);
  FLASHTTS_TRY(r.get("code", &code));
  return r.get("message", &message);
}

void Progress::write(MapWriter& w) const {
  w.put("rid", rid);
  put_map(w, "event", event);
}
Status Progress::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  return get_map(r, "event", &event);
}

void Cancel::write(MapWriter& w) const { w.put("rid", rid).put("reason", reason); }
Status Cancel::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  return r.get_opt("reason", &reason);
}

void Forget::write(MapWriter& w) const {
  w.put("rid", rid);
  if (completed) w.put("completed", completed);
}
Status Forget::read(const MapReader& r) {
  FLASHTTS_TRY(r.get_opt("completed", &completed));
  return r.get("rid", &rid);
}

void GenJob::write(MapWriter& w) const {
  w.put("job_id", job_id).put("rid", rid).put("beam", beam).put("tokens", tokens);
  w.put("temperature", temperature).put("top_p", top_p).put("top_k", top_k).put("seed", seed);
  w.put("max_tokens", max_tokens).put("stop_at_delimiter", stop_at_delimiter);
  w.put("report_every", report_every).put("priority", priority);
  if (forced_tokens > 0) w.put("forced_tokens", forced_tokens);
  if (speculative) w.put("speculative", speculative);
  if (!prefix.empty()) w.put("prefix", prefix);
  if (keep_kv) w.put("keep_kv", keep_kv);
  if (from_job != 0) w.put("from_job", from_job);
  if (request_beams != 0) w.put("request_beams", request_beams);
}

Status GenJob::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("job_id", &job_id));
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("beam", &beam));
  FLASHTTS_TRY(r.get("tokens", &tokens));
  FLASHTTS_TRY(r.get("temperature", &temperature));
  FLASHTTS_TRY(r.get("top_p", &top_p));
  FLASHTTS_TRY(r.get("top_k", &top_k));
  FLASHTTS_TRY(r.get("seed", &seed));
  FLASHTTS_TRY(r.get("max_tokens", &max_tokens));
  FLASHTTS_TRY(r.get("stop_at_delimiter", &stop_at_delimiter));
  FLASHTTS_TRY(r.get_opt("report_every", &report_every));
  FLASHTTS_TRY(r.get_opt("forced_tokens", &forced_tokens));
  FLASHTTS_TRY(r.get_opt("speculative", &speculative));
  FLASHTTS_TRY(r.get_opt("prefix", &prefix));
  FLASHTTS_TRY(r.get_opt("keep_kv", &keep_kv));
  FLASHTTS_TRY(r.get_opt("from_job", &from_job));
  FLASHTTS_TRY(r.get_opt("request_beams", &request_beams));
  return r.get_opt("priority", &priority);
}

void ReleaseKv::write(MapWriter& w) const { w.put("rid", rid).put("job_ids", job_ids); }
Status ReleaseKv::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  return r.get("job_ids", &job_ids);
}

void DropKv::write(MapWriter& w) const { w.put("rid", rid).put("job_ids", job_ids); }
Status DropKv::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  return r.get("job_ids", &job_ids);
}

void StopJobs::write(MapWriter& w) const { w.put("rid", rid).put("job_ids", job_ids).put("at_tokens", at_tokens); }
Status StopJobs::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("job_ids", &job_ids));
  FLASHTTS_TRY(r.get("at_tokens", &at_tokens));
  if (at_tokens.size() != job_ids.size()) return make_error("stop_jobs: at_tokens and job_ids differ in length");
  return Status::success();
}

void GenProgress::write(MapWriter& w) const {
  w.put("job_id", job_id).put("rid", rid).put("beam", beam).put("text", text);
}
Status GenProgress::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("job_id", &job_id));
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("beam", &beam));
  return r.get("text", &text);
}

void GenDone::write(MapWriter& w) const {
  w.put("job_id", job_id).put("rid", rid).put("beam", beam).put("tokens", tokens).put("text", text);
  w.put("finish", finish).put("error", error).put("code", code).put("n_context", n_context).put("n_cached", n_cached);
  w.put("n_preempted", n_preempted).put("queue_ms", queue_ms).put("run_ms", run_ms);
}

Status GenDone::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("job_id", &job_id));
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("beam", &beam));
  FLASHTTS_TRY(r.get("tokens", &tokens));
  FLASHTTS_TRY(r.get("text", &text));
  FLASHTTS_TRY(r.get("finish", &finish));
  FLASHTTS_TRY(r.get_opt("error", &error));
  FLASHTTS_TRY(r.get_opt("code", &code));
  FLASHTTS_TRY(r.get_opt("n_context", &n_context));
  FLASHTTS_TRY(r.get_opt("n_cached", &n_cached));
  FLASHTTS_TRY(r.get_opt("n_preempted", &n_preempted));
  FLASHTTS_TRY(r.get_opt("queue_ms", &queue_ms));
  return r.get_opt("run_ms", &run_ms);
}

void ScoreJob::write(MapWriter& w) const {
  w.put("job_id", job_id).put("rid", rid).put("beam", beam).put("problem", problem).put("steps", steps);
  if (keep_kv) w.put("keep_kv", keep_kv);
  if (from_job != 0) w.put("from_job", from_job);
  if (priority != 0) w.put("priority", priority);
  if (request_beams != 0) w.put("request_beams", request_beams);
}
Status ScoreJob::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("job_id", &job_id));
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("beam", &beam));
  FLASHTTS_TRY(r.get("problem", &problem));
  FLASHTTS_TRY(r.get_opt("keep_kv", &keep_kv));
  FLASHTTS_TRY(r.get_opt("from_job", &from_job));
  FLASHTTS_TRY(r.get_opt("priority", &priority));
  FLASHTTS_TRY(r.get_opt("request_beams", &request_beams));
  return r.get("steps", &steps);
}

void ScoreDone::write(MapWriter& w) const {
  w.put("job_id", job_id).put("rid", rid).put("beam", beam).put("scores", scores).put("error", error);
  w.put("code", code);
  w.put("n_tokens", n_tokens).put("n_computed", n_computed).put("run_ms", run_ms);
}
Status ScoreDone::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("job_id", &job_id));
  FLASHTTS_TRY(r.get("rid", &rid));
  FLASHTTS_TRY(r.get("beam", &beam));
  FLASHTTS_TRY(r.get("scores", &scores));
  FLASHTTS_TRY(r.get_opt("error", &error));
  FLASHTTS_TRY(r.get_opt("code", &code));
  FLASHTTS_TRY(r.get_opt("n_tokens", &n_tokens));
  FLASHTTS_TRY(r.get_opt("n_computed", &n_computed));
  return r.get_opt("run_ms", &run_ms);
}

void Weights::write(MapWriter& w) const {
  w.put("role", role).put("weight_bytes", weight_bytes).put("kv_bytes_per_token", kv_bytes_per_token);
  w.put("block_size", block_size).put("params", params).put("layer_params", layer_params);
  w.put("lm_head_params", lm_head_params).put("prm_head_params", prm_head_params).put("hidden", hidden);
  w.put("attn_flops_per_pair", attn_flops_per_pair).put("max_position", max_position);
  w.put("workspace_bytes", workspace_bytes).put("answer", answer);
}
Status Weights::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  FLASHTTS_TRY(r.get("weight_bytes", &weight_bytes));
  FLASHTTS_TRY(r.get("kv_bytes_per_token", &kv_bytes_per_token));
  FLASHTTS_TRY(r.get("block_size", &block_size));
  for (auto [key, out] : {std::pair{"params", &params}, {"layer_params", &layer_params},
                          {"lm_head_params", &lm_head_params}, {"prm_head_params", &prm_head_params},
                          {"hidden", &hidden}, {"attn_flops_per_pair", &attn_flops_per_pair}})
    FLASHTTS_TRY(r.get_opt(key, out));
  FLASHTTS_TRY(r.get_opt("max_position", &max_position));
  FLASHTTS_TRY(r.get_opt("workspace_bytes", &workspace_bytes));
  return r.get_opt("answer", &answer);
}

void Grant::write(MapWriter& w) const {
  w.put("role", role).put("kv_bytes", kv_bytes).put("kv_tokens", kv_tokens);
  w.put("kv_bytes_max", kv_bytes_max).put("kv_tokens_max", kv_tokens_max).put("serial", serial);
  w.put("max_position", max_position).put("settle_jobs", settle_jobs);
  w.put("turns", turns).put("resident", resident);
}
Status Grant::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  FLASHTTS_TRY(r.get("kv_bytes", &kv_bytes));
  FLASHTTS_TRY(r.get("kv_tokens", &kv_tokens));
  FLASHTTS_TRY(r.get_opt("kv_bytes_max", &kv_bytes_max));
  FLASHTTS_TRY(r.get_opt("kv_tokens_max", &kv_tokens_max));
  FLASHTTS_TRY(r.get_opt("serial", &serial));
  FLASHTTS_TRY(r.get_opt("settle_jobs", &settle_jobs));
  FLASHTTS_TRY(r.get_opt("turns", &turns));
  FLASHTTS_TRY(r.get_opt("resident", &resident));
  return r.get_opt("max_position", &max_position);
}

void DeviceUse::write(MapWriter& w) const { w.put("role", role).put("wants", wants); }
Status DeviceUse::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  return r.get("wants", &wants);
}

void DeviceTurn::write(MapWriter& w) const { w.put("role", role).put("on", on).put("serial", serial); }
Status DeviceTurn::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  FLASHTTS_TRY(r.get("on", &on));
  return r.get("serial", &serial);
}

void TurnDone::write(MapWriter& w) const {
  w.put("role", role).put("serial", serial).put("on", on).put("seconds", seconds).put("error", error);
}
Status TurnDone::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  FLASHTTS_TRY(r.get("serial", &serial));
  FLASHTTS_TRY(r.get("on", &on));
  FLASHTTS_TRY(r.get("seconds", &seconds));
  return r.get("error", &error);
}

void PoolSize::write(MapWriter& w) const {
  w.put("role", role).put("serial", serial).put("kv_bytes", kv_bytes).put("kv_tokens", kv_tokens);
  w.put("preempted", preempted).put("error", error);
}
Status PoolSize::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  FLASHTTS_TRY(r.get("serial", &serial));
  FLASHTTS_TRY(r.get("kv_bytes", &kv_bytes));
  FLASHTTS_TRY(r.get("kv_tokens", &kv_tokens));
  FLASHTTS_TRY(r.get("preempted", &preempted));
  return r.get("error", &error);
}

void EngineLoad::write(MapWriter& w) const {
  w.put("role", role).put("running", running).put("running_ctx_tokens", running_ctx_tokens);
  w.put("kv_used_tokens", kv_used_tokens).put("max_ctx_tokens", max_ctx_tokens);
  w.put("tokens_per_job", tokens_per_job).put("overhead_s", overhead_s).put("s_per_byte", s_per_byte);
  w.put("s_per_flop", s_per_flop).put("miss_tokens_per_job", miss_tokens_per_job);
  w.put("miss_jobs", miss_jobs).put("pool_tokens", pool_tokens);
  w.put("window_jobs", window_jobs).put("window_ctx_tokens", window_ctx_tokens);
  w.put("window_unique_tokens", window_unique_tokens).put("pinned_tokens", pinned_tokens);
}
Status EngineLoad::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("role", &role));
  FLASHTTS_TRY(r.get("running", &running));
  FLASHTTS_TRY(r.get("running_ctx_tokens", &running_ctx_tokens));
  FLASHTTS_TRY(r.get("kv_used_tokens", &kv_used_tokens));
  FLASHTTS_TRY(r.get("max_ctx_tokens", &max_ctx_tokens));
  FLASHTTS_TRY(r.get("tokens_per_job", &tokens_per_job));
  FLASHTTS_TRY(r.get("overhead_s", &overhead_s));
  FLASHTTS_TRY(r.get("s_per_byte", &s_per_byte));
  FLASHTTS_TRY(r.get_opt("miss_tokens_per_job", &miss_tokens_per_job));
  FLASHTTS_TRY(r.get_opt("miss_jobs", &miss_jobs));
  FLASHTTS_TRY(r.get_opt("pool_tokens", &pool_tokens));
  FLASHTTS_TRY(r.get_opt("window_jobs", &window_jobs));
  FLASHTTS_TRY(r.get_opt("window_ctx_tokens", &window_ctx_tokens));
  FLASHTTS_TRY(r.get_opt("window_unique_tokens", &window_unique_tokens));
  FLASHTTS_TRY(r.get_opt("pinned_tokens", &pinned_tokens));
  if (window_ctx_tokens.size() != window_jobs.size() || window_unique_tokens.size() != window_jobs.size())
    return make_error("engine_load: window_jobs, window_ctx_tokens and window_unique_tokens differ in length");
  return r.get("s_per_flop", &s_per_flop);
}

void QueueLoad::write(MapWriter& w) const {
  w.put("gen_jobs", gen_jobs).put("gen_ctx_tokens", gen_ctx_tokens);
  w.put("score_jobs", score_jobs).put("score_ctx_tokens", score_ctx_tokens).put("live_jobs", live_jobs);
  w.put("gen_out_jobs", gen_out_jobs).put("gen_out_tokens", gen_out_tokens);
  w.put("score_out_jobs", score_out_jobs).put("score_out_tokens", score_out_tokens);
}
Status QueueLoad::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("gen_jobs", &gen_jobs));
  FLASHTTS_TRY(r.get("gen_ctx_tokens", &gen_ctx_tokens));
  FLASHTTS_TRY(r.get("score_jobs", &score_jobs));
  FLASHTTS_TRY(r.get_opt("live_jobs", &live_jobs));
  FLASHTTS_TRY(r.get_opt("gen_out_jobs", &gen_out_jobs));
  FLASHTTS_TRY(r.get_opt("gen_out_tokens", &gen_out_tokens));
  FLASHTTS_TRY(r.get_opt("score_out_jobs", &score_out_jobs));
  FLASHTTS_TRY(r.get_opt("score_out_tokens", &score_out_tokens));
  return r.get("score_ctx_tokens", &score_ctx_tokens);
}

void Heartbeat::write(MapWriter& w) const {
  w.put("incarnation", incarnation).put("actors", actors).put("interval_ms", interval_ms);
}
Status Heartbeat::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("incarnation", &incarnation));
  FLASHTTS_TRY(r.get("actors", &actors));
  return r.get("interval_ms", &interval_ms);
}

void StatsQuery::write(MapWriter& w) const { w.put("qid", qid).put("reset_peaks", reset_peaks); }
Status StatsQuery::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("qid", &qid));
  return r.get_opt("reset_peaks", &reset_peaks);
}

void StatsReply::write(MapWriter& w) const {
  w.put("qid", qid).put("actor", actor);
  put_map(w, "stats", stats);
}
Status StatsReply::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("qid", &qid));
  FLASHTTS_TRY(r.get("actor", &actor));
  return get_map(r, "stats", &stats);
}

}  // namespace flashtts::msg
