// The input checks every backend makes before a forward pass: the output
// kind against the model, and each batch entry's tokens, positions, block
// table and output rows. One definition, so the CPU and CUDA backends refuse
// the same inputs with the same words.
//
// Header-only, because the CUDA library (linked after the core) calls it too.
//
// Thread contract: a pure function; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gpu/backend.h"
#include "gpu/model_config.h"
#include "runtime/base/status.h"

namespace flashtts {

// has_lm_head: the model has an untied LM head (Logits of a classifier PRM need one).
inline Status check_batch(const ModelConfig& c, bool has_lm_head, int32_t n_blocks, int32_t block_size,
                          std::span<const BatchEntry> batch, OutputKind kind) {
  if (kind == OutputKind::Score && c.prm.kind == PrmKind::None)
    return make_error("forward: Score output asked of a model that is not a PRM (" + c.architecture + ")");
  if (kind == OutputKind::Logits && c.prm.kind == PrmKind::Classifier && !has_lm_head)
    return make_error("forward: Logits asked of a PRM without an LM head (" + c.architecture + ")");
  if (kind == OutputKind::Score && c.prm.kind == PrmKind::LmLogits) {
    auto bad_id = [&](int32_t id) { return id < 0 || id >= c.vocab_size; };
    if (bad_id(c.prm.good_token_id) || bad_id(c.prm.bad_token_id))
      return make_error("forward: LM-logit PRM has no valid good/bad token ids (good=" +
                        std::to_string(c.prm.good_token_id) + ", bad=" + std::to_string(c.prm.bad_token_id) + ")");
  }
  for (size_t e = 0; e < batch.size(); ++e) {
    const BatchEntry& b = batch[e];
    if (b.tokens.empty()) return make_error("forward: batch entry " + std::to_string(e) + " has no tokens");
    if (b.n_past < 0) return make_error("forward: batch entry " + std::to_string(e) + " has negative n_past");
    int64_t end = (int64_t)b.n_past + (int64_t)b.tokens.size();
    if (c.max_position > 0 && end > c.max_position)
      return make_error("forward: sequence of " + std::to_string(end) + " tokens exceeds max_position_embeddings " +
                        std::to_string(c.max_position));
    if ((int64_t)b.block_table.size() * block_size < end)
      return make_error("forward: block table of entry " + std::to_string(e) + " too short for " +
                        std::to_string(end) + " tokens");
    for (int32_t blk : b.block_table)
      if (blk < 0 || blk >= n_blocks) return make_error("forward: block id " + std::to_string(blk) + " out of range");
    for (int32_t t : b.tokens)
      if (t < 0 || t >= c.vocab_size)
        return make_error("forward: token id " + std::to_string(t) + " outside the vocabulary (" +
                          std::to_string(c.vocab_size) + ")");
    for (int32_t r : b.out_rows)
      if (r < 0 || r >= (int32_t)b.tokens.size())
        return make_error("forward: output row " + std::to_string(r) + " outside entry " + std::to_string(e));
  }
  return Status::success();
}

}  // namespace flashtts
