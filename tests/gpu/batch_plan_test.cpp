// How the CUDA backend cuts a batch into pieces and lays out their metadata
// (gpu/cuda/batch_plan.h). Host code: runs everywhere.
#include <gtest/gtest.h>

#include <numeric>

#include "gpu/cuda/batch_plan.h"

namespace flashtts::cuda {
namespace {

TEST(BatchPlan, ALongPrefillIsCutAndEveryTokenLandsInExactlyOnePiece) {
  std::vector<int32_t> a(50, 1), b(1, 2), c(7, 3), table(16);
  std::iota(table.begin(), table.end(), 0);
  std::vector<int32_t> rows_a = {49}, rows_b = {0}, rows_c = {2, 6};
  std::vector<BatchEntry> batch = {{a, 3, table, rows_a}, {b, 10, table, rows_b}, {c, 0, table, rows_c}};
  auto pieces = plan_pieces(batch, 4, 16, 1000);
  ASSERT_TRUE(pieces.ok());
  std::vector<int32_t> seen(3, 0);
  for (const Piece& p : *pieces) {
    EXPECT_LE(p.n_tokens, 16);
    for (const PiecePart& part : p.parts) seen[part.entry] += part.count;
  }
  EXPECT_EQ(seen, (std::vector<int32_t>{50, 1, 7}));
  EXPECT_EQ(pieces->size(), 4u);  // 58 tokens in pieces of 16

  // Output rows keep their global order; positions continue across pieces.
  MetaLayout L{16, 1000};
  std::vector<int32_t> meta(L.total()), tok, glob, all_glob;
  auto first = first_out_rows(batch);
  EXPECT_EQ(first, (std::vector<int32_t>{0, 1, 2}));
  int32_t next_pos_a = 3;
  for (const Piece& p : *pieces) {
    size_t n = fill_meta(p, batch, first, 4, L, meta.data(), &tok, &glob);
    EXPECT_EQ(n, L.tables() + (size_t)p.n_table);
    for (size_t k = 0; k < p.parts.size(); ++k)
      if (p.parts[k].entry == 0) {
        EXPECT_EQ(meta[L.pos()], next_pos_a) << "a piece that starts with entry 0 continues its positions";
        next_pos_a += p.parts[k].count;
        break;
      }
    for (size_t r = 0; r < tok.size(); ++r) EXPECT_EQ(meta[L.out_idx() + r], tok[r]);
    all_glob.insert(all_glob.end(), glob.begin(), glob.end());
  }
  EXPECT_EQ(all_glob, (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(BatchPlan, BlockTablesOnlyCoverTheTokensOfThePiece) {
  std::vector<int32_t> a(5, 1), table = {7, 8, 9, 10};
  std::vector<int32_t> rows = {4};
  std::vector<BatchEntry> batch = {{a, 2, table, rows}};
  auto pieces = plan_pieces(batch, 4, 64, 100);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 1u);
  EXPECT_EQ((*pieces)[0].n_table, 2);  // positions 2..6 need blocks 0 and 1
  MetaLayout L{64, 100};
  std::vector<int32_t> meta(L.total()), tok, glob;
  fill_meta((*pieces)[0], batch, first_out_rows(batch), 4, L, meta.data(), &tok, &glob);
  EXPECT_EQ(meta[L.tables()], 7);
  EXPECT_EQ(meta[L.tables() + 1], 8);
  EXPECT_EQ(tok, (std::vector<int32_t>{4}));
}

TEST(BatchPlan, ATableLongerThanTheWorkspaceIsAnError) {
  std::vector<int32_t> a(40, 1), table(10);
  std::iota(table.begin(), table.end(), 0);
  std::vector<BatchEntry> batch = {{a, 0, table, {}}};
  EXPECT_FALSE(plan_pieces(batch, 4, 64, 5).ok());
}

TEST(BatchPlan, CheckBatchGivesTheCpuBackendsErrors) {
  ModelConfig c;
  c.vocab_size = 10;
  c.max_position = 100;
  std::vector<int32_t> t = {11}, table = {0};
  std::vector<BatchEntry> batch = {{t, 0, table, {}}};
  Status s = check_batch(c, true, 4, 16, batch, OutputKind::Logits);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "forward: token id 11 outside the vocabulary (10)");
  EXPECT_FALSE(check_batch(c, true, 4, 16, batch, OutputKind::Score).ok());
}

}  // namespace
}  // namespace flashtts::cuda
