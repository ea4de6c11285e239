// memory.offload on the CUDA backend (Backend::set_weights_on_device): the
// weights leave the device for page-locked host memory and come back,
// perhaps at another address (their tensors and the captured CUDA graphs
// then move with them). An engine whose weights went away and came back
// between decode steps matches the CPU engine, while its KV and sequences
// stayed on the device. Skipped where no CUDA device is present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "gpu/engine.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

std::unique_ptr<Engine> engine_on(std::shared_ptr<const DeviceContext> device, const RandomModelSpec& spec) {
  return small_engine(std::move(device), spec, 256 << 10);
}

TEST(CudaOffload, WeightsThatLeaveAndComeBackBetweenDecodeStepsMatchTheCpuEngine) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  for (TestArch arch : {TestArch::Qwen2, TestArch::Llama}) {
    RandomModelSpec spec;
    spec.arch = arch;
    auto cpu = engine_on(nullptr, spec);
    auto gpu = engine_on(ctx, spec);
    ASSERT_TRUE(cpu && gpu);
    const int32_t V = cpu->config().vocab_size;
    for (Engine* e : {cpu.get(), gpu.get()}) ASSERT_TRUE(e->add_sequence(1, random_tokens(5, 21, V)).ok());
    RunItem one{1, RowSelect::Last, 0, {}};
    int32_t next = 3;
    auto decode = [&](int steps) {
      for (int k = 0; k < steps; ++k) {
        expect_same_logits(*cpu, *gpu, std::span(&one, 1));
        for (Engine* e : {cpu.get(), gpu.get()}) e->append(1, std::vector<int32_t>{next});
        next = (next * 37 + 11) % V;
      }
    };
    decode(5);  // the decode graph is captured by now
    for (int trip = 0; trip < 3; ++trip) {
      auto off = gpu->set_weights_on_device(false);
      ASSERT_TRUE(off.ok()) << off.error().message;
      RunResult r;
      ASSERT_FALSE(gpu->run(std::span(&one, 1), OutputKind::Logits, &r).ok()) << "no pass while the weights are away";
      // Something takes memory meanwhile, so the weights may come back elsewhere.
      void* squatter = nullptr;
      ASSERT_EQ(cudaMalloc(&squatter, (size_t)(1 + trip) << 20), cudaSuccess);
      auto on = gpu->set_weights_on_device(true);
      ASSERT_TRUE(on.ok()) << on.error().message;
      EXPECT_GE(*on, 0.0);
      decode(3);
      ASSERT_EQ(cudaFree(squatter), cudaSuccess);
    }
  }
}

// The weights' device memory really goes back to the driver while they are
// away: what cudaMemGetInfo reports free rises by about their size.
TEST(CudaOffload, TheWeightsMemoryIsFreeWhileTheyAreAway) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  RandomModelSpec spec;
  spec.hidden = 1024, spec.intermediate = 2816, spec.layers = 4, spec.heads = 16, spec.kv_heads = 4;
  spec.head_dim = 64, spec.vocab = 32000;  // ~100 MB of bf16 weights
  auto gpu = engine_on(ctx, spec);
  ASSERT_TRUE(gpu);
  const size_t weights = (size_t)weight_bytes_on(gpu->config(), random_model(spec).second, ctx.get());
  size_t free_before = 0, free_off = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);
  ASSERT_TRUE(gpu->set_weights_on_device(false).ok());
  ASSERT_EQ(cudaMemGetInfo(&free_off, &total), cudaSuccess);
  EXPECT_GE(free_off, free_before + weights - (4u << 20)) << "weights " << weights;
  ASSERT_TRUE(gpu->set_weights_on_device(true).ok());
  size_t free_on = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_on, &total), cudaSuccess);
  EXPECT_LE(free_on, free_off - weights + (4u << 20));
}

}  // namespace
}  // namespace flashtts::test
