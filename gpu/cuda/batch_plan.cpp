#include "gpu/cuda/batch_plan.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace flashtts::cuda {

Status check_batch(const ModelConfig& c, bool has_lm_head, int32_t n_blocks, int32_t block_size,
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

namespace {

int32_t table_len(const BatchEntry& b, int32_t end_token, int32_t block_size) {
  return (b.n_past + end_token + block_size - 1) / block_size;
}

}  // namespace

Expected<std::vector<Piece>> plan_pieces(std::span<const BatchEntry> batch, int32_t block_size, int32_t max_tokens,
                                         int32_t max_table) {
  assert(max_tokens > 0 && max_table > 0);
  std::vector<Piece> pieces(1);
  for (size_t e = 0; e < batch.size(); ++e) {
    const int32_t n = (int32_t)batch[e].tokens.size();
    if (table_len(batch[e], n, block_size) > max_table)
      return make_error("forward: entry " + std::to_string(e) + " needs " +
                        std::to_string(table_len(batch[e], n, block_size)) +
                        " KV blocks, more than the CUDA workspace holds (" + std::to_string(max_table) + ")");
    for (int32_t begin = 0; begin < n;) {
      Piece* p = &pieces.back();
      int32_t count = std::min(n - begin, max_tokens - p->n_tokens);
      int32_t tl = table_len(batch[e], begin + count, block_size);
      if (count == 0 || p->n_table + tl > max_table) {
        pieces.emplace_back();
        continue;  // a fresh piece always fits: count = min(n - begin, max_tokens) and tl <= max_table
      }
      p->parts.push_back({(int32_t)e, begin, count});
      p->n_tokens += count;
      p->n_table += tl;
      begin += count;
    }
  }
  if (pieces.back().parts.empty()) pieces.pop_back();
  return pieces;
}

std::vector<int32_t> first_out_rows(std::span<const BatchEntry> batch) {
  std::vector<int32_t> first(batch.size());
  int32_t row = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    first[e] = row;
    row += (int32_t)batch[e].out_rows.size();
  }
  return first;
}

size_t fill_meta(const Piece& piece, std::span<const BatchEntry> batch, std::span<const int32_t> first_out_row,
                 int32_t block_size, const MetaLayout& L, int32_t* dst, std::vector<int32_t>* out_token,
                 std::vector<int32_t>* out_global) {
  out_token->clear();
  out_global->clear();
  int32_t t = 0, table = 0;
  for (size_t k = 0; k < piece.parts.size(); ++k) {
    const PiecePart& part = piece.parts[k];
    const BatchEntry& b = batch[part.entry];
    dst[L.table_off() + k] = table;
    const int32_t tl = table_len(b, part.begin + part.count, block_size);
    std::copy_n(b.block_table.data(), tl, dst + L.tables() + table);
    table += tl;
    for (size_t r = 0; r < b.out_rows.size(); ++r) {
      const int32_t row = b.out_rows[r];
      if (row < part.begin || row >= part.begin + part.count) continue;
      out_token->push_back(t + row - part.begin);
      out_global->push_back(first_out_row[part.entry] + (int32_t)r);
    }
    for (int32_t i = 0; i < part.count; ++i, ++t) {
      dst[L.tokens() + t] = b.tokens[part.begin + i];
      dst[L.pos() + t] = b.n_past + part.begin + i;
      dst[L.entry() + t] = (int32_t)k;
    }
  }
  std::copy(out_token->begin(), out_token->end(), dst + L.out_idx());
  return L.tables() + table;
}

}  // namespace flashtts::cuda
