// What an engine actor (the generator or the verifier) announces to the
// memory arbiter once its model is loaded (msg::Weights: the weights, the KV
// a token takes, its positions, and the terms of the model's roofline cost), and the cost
// the arbiter reads back from it.
//
// Thread contract: pure functions; any thread.
#pragma once

#include <cstdint>

#include "gpu/latency_model.h"
#include "messages/internal.h"

namespace flashtts {

// max_position: the model's positions (ModelConfig::max_position; 0 = no
// limit); workspace_bytes: its backend's workspaces on the device
// (workspace_bytes_on, gpu/engine.h); answer: it answers a WeightsQuery
// (msg::Weights::answer).
msg::Weights weights_report(const char* role, const ModelCost& cost, int32_t block_size, int64_t max_position,
                            int64_t workspace_bytes, bool answer = false);
ModelCost cost_of(const msg::Weights& w);

}  // namespace flashtts
