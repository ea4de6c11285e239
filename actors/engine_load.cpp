#include "actors/engine_load.h"

namespace flashtts {

Status LoadMeter::start(const msg::Grant& g, Engine& engine, const ModelCost& cost, bool cpu, const Logger& log) {
  if (on_ || g.kv_bytes_max <= g.kv_bytes) return Status::success();
  on_ = true;
  model_ = LatencyModel(cost);
  const auto t0 = Clock::now();
  // Prefill tokens cost 2 FLOPs per weight: a CPU measures few.
  FLASHTTS_TRY(calibrate(engine, &model_, cpu ? 64 : 512));
  log->info("latency model calibrated in {:.0f} ms: {}",
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), model_.describe());
  return Status::success();
}

msg::Weights weights_report(const char* role, const ModelCost& cost, int32_t block_size) {
  msg::Weights w{role, (int64_t)cost.weight_bytes, (int64_t)cost.kv_bytes_per_token, block_size};
  w.params = cost.params, w.layer_params = cost.layer_params, w.lm_head_params = cost.lm_head_params;
  w.prm_head_params = cost.prm_head_params, w.hidden = cost.hidden, w.attn_flops_per_pair = cost.attn_flops_per_pair;
  return w;
}

ModelCost cost_of(const msg::Weights& w) {
  ModelCost c;
  c.weight_bytes = (double)w.weight_bytes, c.kv_bytes_per_token = (double)w.kv_bytes_per_token;
  c.params = w.params, c.layer_params = w.layer_params, c.lm_head_params = w.lm_head_params;
  c.prm_head_params = w.prm_head_params, c.hidden = w.hidden, c.attn_flops_per_pair = w.attn_flops_per_pair;
  return c;
}

}  // namespace flashtts
