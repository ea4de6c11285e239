// Token sampling: greedy, temperature, top-k, top-p, applied in Hugging Face's
// order (temperature, then top-k, then top-p).
//
// The random number behind a token is a pure function of (seed, sequence id,
// position): a sequence samples the same tokens whatever else shares its batch,
// whichever thread runs it, and in baseline or flashtts mode alike.
//
// Thread contract: pure functions; call from any thread.
#pragma once

#include <cstdint>
#include <span>

namespace flashtts {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // nucleus mass kept, (0, 1]
  int32_t top_k = 0;         // 0 = off
  uint64_t seed = 0;
};

// Uniform in [0, 1), from a counter-based hash of (seed, seq_id, position).
double sample_uniform(uint64_t seed, uint64_t seq_id, uint64_t position);

// REQUIRES: !logits.empty(); params validated (temperature >= 0, 0 < top_p <= 1, top_k >= 0).
int32_t sample_token(std::span<const float> logits, const SamplingParams& params, uint64_t seq_id,
                     uint64_t position);

// Index of the largest value (lowest index on ties).
int32_t argmax(std::span<const float> values);

}  // namespace flashtts
