// ContextWindows: the distinct KV tokens of the last k finished jobs'
// contexts (actors/context_windows.h).
#include <gtest/gtest.h>

#include <numeric>
#include <span>
#include <vector>

#include "actors/context_windows.h"

namespace flashtts {
namespace {

// `shared` tokens every job has (a prompt), then `own` of its own.
std::vector<int32_t> context(int32_t prompt_id, int32_t shared, int32_t job, int32_t own) {
  std::vector<int32_t> t((size_t)shared);
  std::iota(t.begin(), t.end(), prompt_id * 100000);
  for (int32_t i = 0; i < own; ++i) t.push_back(1'000'000 + job * 1000 + i);
  return t;
}

TEST(ContextWindows, SharedFullBlocksCountOnceAndPartialBlocksEachTime) {
  ContextWindows w;
  // Four jobs: a 32-token prompt (two blocks of 16), then 20 tokens each:
  // a block of their own and 4 tokens in a partial block.
  for (int32_t j = 0; j < 4; ++j) w.add(context(1, 32, j, 20), 16);
  for (const auto& x : w.windows()) {
    EXPECT_EQ(x.jobs, 4);
    EXPECT_EQ(x.ctx_tokens, 4 * 52);
    EXPECT_EQ(x.unique_tokens, 2 * 16 + 4 * 16 + 4 * 4);
  }
}

TEST(ContextWindows, ABlockIsKeyedByItsPrefixToo) {
  ContextWindows w;
  // The same second block after different first ones: two blocks each.
  w.add(std::vector<int32_t>{1, 7}, 1);
  w.add(std::vector<int32_t>{2, 7}, 1);
  EXPECT_EQ(w.windows()[0].unique_tokens, 4);
  w.add(std::vector<int32_t>{1, 7}, 1);  // the first job's blocks again
  EXPECT_EQ(w.windows()[0].unique_tokens, 4);
  EXPECT_EQ(w.windows()[0].ctx_tokens, 6);
}

TEST(ContextWindows, AContextGivenInTwoPartsIsTheSameJob) {
  // The generator's job: its context, then the step it wrote.
  const std::vector<int32_t> all = context(1, 40, 0, 30);
  ContextWindows whole, parts;
  whole.add(all, 16);
  whole.add(context(1, 40, 1, 30), 16);
  parts.add(std::span(all).first(25), 16, std::span(all).subspan(25));
  parts.add(context(1, 40, 1, 30), 16);
  EXPECT_EQ(parts.windows()[0].unique_tokens, whole.windows()[0].unique_tokens);
  EXPECT_EQ(parts.windows()[0].ctx_tokens, whole.windows()[0].ctx_tokens);
  EXPECT_EQ(whole.windows()[0].unique_tokens, 2 * 16 + 2 * (2 * 16 + 6)) << "the prompt's two full blocks once";
}

TEST(ContextWindows, EachWindowHoldsItsLastKJobs) {
  ContextWindows w;
  // 8 jobs of one prompt, then 8 of another: the window of 8 sees only the
  // second prompt's, the window of 16 both.
  for (int32_t j = 0; j < 8; ++j) w.add(context(1, 64, j, 16), 16);
  for (int32_t j = 0; j < 8; ++j) w.add(context(2, 64, j, 16), 16);
  const auto ws = w.windows();
  ASSERT_EQ(ContextWindows::kSizes[0], 8);
  EXPECT_EQ(ws[0].jobs, 8);
  EXPECT_EQ(ws[0].unique_tokens, 64 + 8 * 16);
  EXPECT_EQ(ws[1].jobs, 16);
  EXPECT_EQ(ws[1].unique_tokens, 2 * (64 + 8 * 16));
  EXPECT_EQ(ws[1].ctx_tokens, 16 * 80);
  // Far past the largest window: every count stays that of its last k jobs.
  for (int32_t j = 0; j < 600; ++j) w.add(context(3 + j % 2, 32, j, 16), 16);
  for (size_t i = 0; i < ContextWindows::kSizes.size(); ++i) {
    const int32_t k = ContextWindows::kSizes[i];
    EXPECT_EQ(w.windows()[i].jobs, k);
    EXPECT_EQ(w.windows()[i].unique_tokens, 2 * 32 + k * 16) << k;
  }
}

}  // namespace
}  // namespace flashtts
