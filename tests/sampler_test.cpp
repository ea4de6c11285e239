#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "gpu/sampler.h"

namespace flashtts {
namespace {

// The definition, written the plain way: sort every candidate, softmax in
// double, cut the nucleus, walk the cumulative mass.
int32_t reference_sample(const std::vector<float>& l, const SamplingParams& p, uint64_t seq, uint64_t pos) {
  const int32_t n = (int32_t)l.size();
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  int32_t keep = p.top_k > 0 && p.top_k < n ? p.top_k : n;
  std::vector<double> w(keep);
  double sum = 0.0;
  for (int32_t i = 0; i < keep; ++i) sum += w[i] = std::exp(((double)l[idx[i]] - l[idx[0]]) / p.temperature);
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    for (int32_t i = 0; i < keep; ++i)
      if ((cum += w[i]) >= (double)p.top_p * sum) {
        keep = i + 1;
        break;
      }
    sum = std::accumulate(w.begin(), w.begin() + keep, 0.0);
  }
  double u = sample_uniform(p.seed, seq, pos) * sum, cum = 0.0;
  for (int32_t i = 0; i < keep; ++i)
    if (u < (cum += w[i])) return idx[i];
  return idx[keep - 1];
}

TEST(Sampler, TheLinearTimeSelectionPicksWhatSortingWouldPick) {
  std::mt19937_64 rng(5);
  const SamplingParams settings[] = {{1.0f, 1.0f, 0, 1}, {0.8f, 1.0f, 0, 2}, {0.7f, 0.9f, 0, 3},
                                     {1.3f, 0.5f, 40, 4}, {1.0f, 1.0f, 7, 5}, {0.5f, 0.95f, 0, 6}};
  int checked = 0;
  for (int vocab : {1, 2, 3, 17, 1000, 32000}) {
    for (int shape = 0; shape < 3; ++shape) {
      std::vector<float> l(vocab);
      std::normal_distribution<float> g(0.0f, shape == 1 ? 0.05f : 3.0f);
      for (auto& x : l) x = shape == 2 ? std::round(g(rng)) : g(rng);  // shape 2: many ties
      for (const auto& sp : settings)
        for (uint64_t pos = 0; pos < (vocab > 1000 ? 20u : 200u); ++pos, ++checked)
          ASSERT_EQ(sample_token(l, sp, 9, pos), reference_sample(l, sp, 9, pos))
              << "vocab " << vocab << " shape " << shape << " T " << sp.temperature << " top_p " << sp.top_p
              << " top_k " << sp.top_k << " position " << pos;
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(Sampler, TemperatureZeroIsArgmaxWithTheLowestIdOnTies) {
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(sample_token(l, {0.0f, 1.0f, 0, 1}, 0, 0), 1);
}

TEST(Sampler, TheRandomStreamIsAPureFunctionOfSeedSequenceAndPosition) {
  EXPECT_EQ(sample_uniform(1, 2, 3), sample_uniform(1, 2, 3));
  EXPECT_NE(sample_uniform(1, 2, 3), sample_uniform(1, 2, 4));
  EXPECT_NE(sample_uniform(1, 2, 3), sample_uniform(1, 3, 3));
  EXPECT_NE(sample_uniform(1, 2, 3), sample_uniform(2, 2, 3));
  double u = sample_uniform(99, 5, 7);
  EXPECT_GE(u, 0.0);
  EXPECT_LT(u, 1.0);
}

TEST(Sampler, TopKOneAndTinyTopPAlwaysPickTheBestToken) {
  std::vector<float> l = {0.5f, 0.2f, 0.9f, 0.1f};
  for (uint64_t pos = 0; pos < 200; ++pos) {
    EXPECT_EQ(sample_token(l, {1.0f, 1.0f, 1, 7}, 0, pos), 2);
    EXPECT_EQ(sample_token(l, {1.0f, 1e-6f, 0, 7}, 0, pos), 2);
  }
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingTheMass) {
  // probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps {0, 1}, never 2.
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  std::map<int, int> seen;
  for (uint64_t pos = 0; pos < 4000; ++pos) seen[sample_token(l, {1.0f, 0.7f, 0, 3}, 1, pos)]++;
  EXPECT_EQ(seen[2], 0);
  EXPECT_NEAR(seen[0] / 4000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampler, FrequenciesFollowTheTemperedSoftmax) {
  std::vector<float> l = {1.0f, 0.0f, -1.0f};
  const float t = 0.5f;
  std::vector<double> p(3);
  double z = 0;
  for (int i = 0; i < 3; ++i) z += p[i] = std::exp(l[i] / t);
  std::vector<int> count(3);
  const int n = 20000;
  for (uint64_t pos = 0; pos < n; ++pos) count[sample_token(l, {t, 1.0f, 0, 11}, 2, pos)]++;
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(count[i] / (double)n, p[i] / z, 0.015) << "token " << i;
}

}  // namespace
}  // namespace flashtts
