#include "actors/weights_report.h"

namespace flashtts {

msg::Weights weights_report(const char* role, const ModelCost& cost, int32_t block_size, int64_t max_position,
                            int64_t workspace_bytes, bool answer) {
  msg::Weights w{role, (int64_t)cost.weight_bytes, (int64_t)cost.kv_bytes_per_token, block_size};
  w.max_position = max_position, w.workspace_bytes = workspace_bytes, w.answer = answer;
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
