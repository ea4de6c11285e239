// What one forward pass does, in the terms a time model needs: rows, new
// tokens, output rows, KV read and attention pairs. Device-independent: the
// simulated card times a pass by it (gpu/sim/sim_card.h), the engine reports
// it for every pass it runs (RunResult::shape), and the latency model turns
// it into bytes and FLOPs (gpu/latency_model.h).
//
// Thread contract: plain values and pure functions; any thread.
#pragma once

#include <cstdint>
#include <span>

#include "gpu/model_config.h"

namespace flashtts {

struct BatchEntry;
enum class OutputKind;

struct PassShape {
  int64_t rows = 0;        // sequences in the batch
  int64_t tokens = 0;      // new tokens (their KV is written)
  int64_t out_rows = 0;    // rows that go through the output head
  int64_t kv_tokens = 0;   // KV tokens read: per sequence its context (past + new), once
  int64_t attn_pairs = 0;  // (query, key) pairs: per new token the keys it attends
  bool lm_head = true;     // the output head is the vocabulary (policy), not a PRM head
};

// The shape of a pass of `n_new` tokens after `n_past` (causal; a sliding
// window caps what a token attends), added to *s.
void add_pass_sequence(const ModelConfig& c, int64_t n_past, int64_t n_new, int64_t n_out, PassShape* s);

// The shape of a backend's pass over `batch` asking for `kind`: Hidden reads
// no head; Logits, Tokens and an LM-logit PRM's Score read the vocabulary.
PassShape pass_shape_of(const ModelConfig& c, std::span<const BatchEntry> batch, OutputKind kind);

}  // namespace flashtts
