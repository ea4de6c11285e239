#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "gpu/sampler.h"

namespace flashtts {
namespace {

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
