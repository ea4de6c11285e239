// GPU sampling against the host sampler (gpu/sampler.cpp): the same token
// for every row, whatever the mix of greedy, temperature, top-k and top-p
// rows in the batch, including tied logits. Skipped where no CUDA device is
// present; the shared random stream is checked everywhere.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <random>

#include "gpu/cuda/sampling.h"
#include "gpu/sample_hash.h"
#include "gpu/sampler.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

TEST(SampleHash, HostSamplerDrawsFromTheSharedStream) {
  for (uint64_t s = 0; s < 50; ++s) EXPECT_EQ(sample_uniform(s, s * 3 + 1, s * 7), uniform_of(s, s * 3 + 1, s * 7));
  EXPECT_NE(uniform_of(1, 2, 3), uniform_of(1, 2, 4));
}

TEST(CudaSampling, GpuTokensEqualTheHostSamplersTokens) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  cudaStream_t st = nullptr;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  for (int32_t vocab : {50, 1000, 151936}) {
    const int32_t rows = 24;
    std::mt19937 rng(vocab);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> logits((size_t)rows * vocab);
    for (float& x : logits) x = nd(rng);
    for (int32_t i = 0; i < vocab; i += 3) logits[i] = logits[0];  // row 0 has many ties with its max candidate
    std::vector<SamplingParams> params(rows);
    std::vector<uint64_t> seqs(rows), positions(rows);
    for (int32_t r = 0; r < rows; ++r) {
      SamplingParams& p = params[r];
      p.temperature = r % 6 == 0 ? 0.0f : 0.3f + 0.2f * (r % 5);
      p.top_k = r % 4 == 1 ? 1 + r : (r % 4 == 2 ? vocab + 5 : 0);
      p.top_p = r % 3 == 0 ? 1.0f : 0.5f + 0.1f * (r % 4);
      p.seed = 1234 + r / 8;
      seqs[r] = r * 17 + 3;
      positions[r] = 40 + r;
    }
    float* d = nullptr;
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), logits.size() * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d, logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    auto sampler = cuda::GpuSampler::create(rows, vocab, st);
    ASSERT_TRUE(sampler.ok()) << sampler.error().message;
    std::vector<int32_t> got(rows);
    Status s = sampler->sample(d, rows, params, seqs, positions, got.data());
    ASSERT_TRUE(s.ok()) << s.message();
    for (int32_t r = 0; r < rows; ++r) {
      std::span<const float> row(logits.data() + (size_t)r * vocab, vocab);
      EXPECT_EQ(got[r], sample_token(row, params[r], seqs[r], positions[r])) << "vocab " << vocab << " row " << r;
    }
    cudaFree(d);
  }
  cudaStreamDestroy(st);
}

}  // namespace
}  // namespace flashtts::test
