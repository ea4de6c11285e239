// The engine on a CUDA device context against the same engine on the CPU,
// through the public calls the actors make: prefix reuse, forks whose
// partial block is copied on the device (copy_blocks), chunked prefill and
// mixed batches. bf16 on the GPU, so logits agree within 1e-2. Skipped
// where no CUDA device is present.
#include <gtest/gtest.h>

#include "gpu/engine.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

std::unique_ptr<Engine> engine_on(std::shared_ptr<const DeviceContext> device, int32_t block_size) {
  auto [c, w] = random_model(RandomModelSpec{});
  EngineOptions o;
  o.kv_bytes = 4 << 20;
  o.block_size = block_size;
  o.n_threads = 2;
  o.device = std::move(device);
  auto e = Engine::create(c, w, o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  return e.ok() ? std::move(e).value() : nullptr;
}

class CudaEngine : public ::testing::TestWithParam<int32_t> {};

TEST_P(CudaEngine, ForksAndChunkedPrefillMatchTheCpuEngine) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  auto cpu = engine_on(nullptr, GetParam());
  auto gpu = engine_on(ctx, GetParam());
  ASSERT_TRUE(cpu && gpu);
  const int32_t V = cpu->config().vocab_size;
  auto prefix = random_tokens(3, 37, V), tail_a = random_tokens(4, 20, V), tail_b = random_tokens(5, 20, V);
  auto step = [&](std::span<const RunItem> items) { expect_same_logits(*cpu, *gpu, items); };
  for (Engine* e : {cpu.get(), gpu.get()}) ASSERT_TRUE(e->add_sequence(1, prefix).ok());
  for (int chunk = 0; chunk < 4; ++chunk) {  // chunked prefill, 11 tokens a call
    RunItem it{1, RowSelect::Last, 11, {}};
    step(std::span(&it, 1));
  }
  for (Engine* e : {cpu.get(), gpu.get()}) {
    ASSERT_TRUE(e->fork(1, 2).ok());
    e->append(1, tail_a);
    e->append(2, tail_b);
  }
  std::vector<RunItem> both = {{1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}};
  step(both);
  // Decode both, one token a step, after a second fork of the child.
  for (Engine* e : {cpu.get(), gpu.get()}) ASSERT_TRUE(e->fork(2, 3).ok());
  for (int k = 0; k < 8; ++k) {
    for (Engine* e : {cpu.get(), gpu.get()})
      for (int64_t s : {1, 2, 3}) e->append(s, std::vector<int32_t>{(int32_t)((k * 13 + s) % V)});
    std::vector<RunItem> three = {
        {1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}, {3, RowSelect::Last, 0, {}}};
    step(three);
  }
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, CudaEngine, ::testing::Values(1, 4, 16, 32));

}  // namespace
}  // namespace flashtts::test
