// Helpers of the GPU tests: the CUDA device or a skip, small random-weight
// models of every architecture the backends serve (in memory, shaped like
// the real ones: GQA, biases, tied or untied heads, PRM heads), and the
// relative error the parity checks use.
//
// Thread contract: call from the test's main thread.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "gpu/device_context.h"
#include "gpu/engine.h"
#include "gpu/model_config.h"
#include "gpu/weights.h"

namespace flashtts::test {

// The CUDA device context, or null with *why saying why there is none.
std::shared_ptr<const DeviceContext> cuda_device(std::string* why);

enum class TestArch { Qwen2, Llama, Qwen2Prm, SkyworkPrm, LmLogitsPrm, MistralWindow };

struct RandomModelSpec {
  TestArch arch = TestArch::Qwen2;
  int32_t hidden = 64, intermediate = 128, layers = 2, heads = 4, kv_heads = 2, head_dim = 16, vocab = 211;
  uint32_t seed = 1;
};

std::pair<ModelConfig, ModelWeights> random_model(const RandomModelSpec& spec);

// ||a - b|| / ||b|| over all values (L2).
double rel_error(std::span<const float> a, std::span<const float> b);

std::vector<int32_t> random_tokens(uint32_t seed, size_t n, int32_t vocab);

// An engine of random_model(spec) on `device` (null = the CPU): blocks of 4
// tokens, 2 threads, a pool of kv_bytes with room to grow to kv_bytes_max
// (0 = none); null (and a failure) when it cannot be made.
std::unique_ptr<Engine> small_engine(std::shared_ptr<const DeviceContext> device, const RandomModelSpec& spec,
                                     size_t kv_bytes, size_t kv_bytes_max = 0);

// Runs `items` on both engines (the same sequences in each) and expects the
// same rows, each within `tolerance` (rel_error) of the CPU's logits.
void expect_same_logits(Engine& cpu, Engine& gpu, std::span<const RunItem> items, double tolerance = 1e-2);

}  // namespace flashtts::test

// Skips the calling test where no CUDA device can be used; binds `ctx`.
#define FLASHTTS_REQUIRE_CUDA(ctx)                                             \
  std::string flashtts_why_;                                                   \
  auto ctx = ::flashtts::test::cuda_device(&flashtts_why_);                    \
  if (!ctx) GTEST_SKIP() << "no CUDA device: " << flashtts_why_
