// How the CUDA backend feeds a ragged batch to fixed-size device workspaces:
// the batch is cut into pieces of at most max_tokens tokens (a long prefill
// chunk is cut too: its later part attends to the KV its earlier part wrote),
// and each piece's metadata is laid out at fixed offsets, so a captured
// decode graph finds it at the same device addresses every step.
//
// Host code only, no CUDA: tests/gpu/batch_plan_test.cpp runs it anywhere.
//
// Thread contract: pure functions and plain values; the owning backend's
// thread calls them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gpu/backend.h"
#include "gpu/batch_check.h"
#include "gpu/model_config.h"
#include "runtime/base/status.h"

namespace flashtts::cuda {

struct PiecePart {
  int32_t entry = 0;  // index in the batch
  int32_t begin = 0;  // first token of the entry in this piece
  int32_t count = 0;  // tokens of the entry in this piece
};

struct Piece {
  std::vector<PiecePart> parts;
  int32_t n_tokens = 0;
  int32_t n_table = 0;  // block-table entries the parts need together
};

// REQUIRES: check_batch() passed. Error only when one entry's block table
// alone is longer than max_table.
Expected<std::vector<Piece>> plan_pieces(std::span<const BatchEntry> batch, int32_t block_size, int32_t max_tokens,
                                         int32_t max_table);

// Fixed offsets (in int32 units) of a piece's metadata for max_tokens M.
struct MetaLayout {
  int32_t max_tokens = 0, max_table = 0;
  size_t tokens() const { return 0; }
  size_t pos() const { return (size_t)max_tokens; }
  size_t entry() const { return 2 * (size_t)max_tokens; }
  size_t table_off() const { return 3 * (size_t)max_tokens; }
  size_t out_idx() const { return 4 * (size_t)max_tokens; }
  size_t tables() const { return 5 * (size_t)max_tokens; }
  size_t total() const { return tables() + (size_t)max_table; }
};

// Writes the piece's metadata into dst (MetaLayout::total() ints) and lists
// its output rows: out_token[k] = token row in the piece, out_global[k] =
// row of the whole call's output (batch order, then out_rows order).
// Returns the ints to upload (a prefix of dst).
size_t fill_meta(const Piece& piece, std::span<const BatchEntry> batch, std::span<const int32_t> first_out_row,
                 int32_t block_size, const MetaLayout& layout, int32_t* dst, std::vector<int32_t>* out_token,
                 std::vector<int32_t>* out_global);

// first_out_row[e] = the output row of batch[e].out_rows[0].
std::vector<int32_t> first_out_rows(std::span<const BatchEntry> batch);

}  // namespace flashtts::cuda
