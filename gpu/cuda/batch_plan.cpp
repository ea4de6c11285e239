#include "gpu/cuda/batch_plan.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace flashtts::cuda {

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
