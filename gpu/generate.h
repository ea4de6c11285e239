// Plain batched generation and PRM scoring on top of the Engine, for the CLI
// and the benchmarks. The generator actor does its own continuous batching;
// these loops are the simple, synchronous form of the same calls.
//
// Thread contract: runs on the caller's thread, which must own the Engine.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gpu/engine.h"
#include "gpu/sampler.h"

namespace flashtts {

struct GenerateRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int32_t max_tokens = 128;
  std::vector<int32_t> stop_ids;  // EOS ids: generation ends after emitting one
  uint64_t seq_id = 0;            // names the random stream: (seed, seq_id, position)
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, the stop token included
  std::string finish_reason;    // "stop" (an EOS id) or "length"
};

// Generates for all requests together: one forward pass per step over every
// unfinished sequence. `on_token(i, id)` is called as each token is chosen.
// Error when the KV budget cannot hold the batch (no preemption here).
Expected<std::vector<GenerateResult>> generate(
    Engine& engine, std::span<const GenerateRequest> requests,
    const std::function<void(size_t, int32_t)>& on_token = nullptr);

// The PRM's probability at each of `positions` (ascending) of `ids`.
Expected<std::vector<float>> score_positions(Engine& engine, std::span<const int32_t> ids,
                                             std::span<const int32_t> positions);

}  // namespace flashtts
