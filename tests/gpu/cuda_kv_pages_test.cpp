// The CUDA backend's elastic KV pool (gpu/cuda/kv_pages.h): pages mapped
// and unmapped under fixed addresses, the blocks below a cut kept byte for
// byte, new blocks zeroed, pages given back reused by the next pool that
// grows; and an engine on the GPU that grows and shrinks between passes
// against the same engine on the CPU. Skipped where no CUDA device is
// present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "gpu/cuda/kv_pages.h"
#include "gpu/engine.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

constexpr int32_t kLayers = 3;
constexpr size_t kBlockBytes = 48 << 10;  // not a divisor of a page: blocks straddle pages

std::vector<uint8_t> read(const cuda::KvPages& kv, int32_t layer, size_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  const char* src = static_cast<const char*>(kv.base()) + layer * kv.layer_stride() + offset;
  EXPECT_EQ(cudaMemcpy(out.data(), src, n, cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

void fill(const cuda::KvPages& kv, int32_t blocks, uint8_t seed) {
  for (int32_t l = 0; l < kLayers; ++l) {
    std::vector<uint8_t> v((size_t)blocks * kBlockBytes);
    for (size_t i = 0; i < v.size(); ++i) v[i] = (uint8_t)(seed + l * 31 + i * 7);
    char* dst = static_cast<char*>(kv.base()) + l * kv.layer_stride();
    ASSERT_EQ(cudaMemcpy(dst, v.data(), v.size(), cudaMemcpyHostToDevice), cudaSuccess);
  }
}

void expect_filled(const cuda::KvPages& kv, int32_t blocks, uint8_t seed) {
  for (int32_t l = 0; l < kLayers; ++l) {
    const auto got = read(kv, l, 0, (size_t)blocks * kBlockBytes);
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += got[i] != (uint8_t)(seed + l * 31 + i * 7);
    EXPECT_EQ(bad, 0u) << "layer " << l;
  }
}

TEST(CudaKvPages, GrowAndShrinkKeepTheBlocksBelowTheCutAndReuseThePagesGivenBack) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  int device = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  cudaStream_t st = nullptr;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  {
    auto a = cuda::KvPages::create(device, kLayers, kBlockBytes, 5, 400, st);
    ASSERT_TRUE(a.ok()) << a.error().message;
    const void* base = a->base();
    const size_t small = a->mapped_bytes();
    EXPECT_GE(small, kLayers * 5 * kBlockBytes);
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    for (int32_t l = 0; l < kLayers; ++l)
      for (uint8_t b : read(*a, l, 0, 5 * kBlockBytes)) ASSERT_EQ(b, 0) << "a new pool reads as zeros";
    fill(*a, 5, 1);

    // Grow: the same addresses, the old blocks intact, the new ones zero.
    ASSERT_TRUE(a->resize(300, st).ok());
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    EXPECT_EQ(a->base(), base);
    EXPECT_GE(a->mapped_bytes(), kLayers * 300 * kBlockBytes);
    expect_filled(*a, 5, 1);
    for (uint8_t b : read(*a, kLayers - 1, 5 * kBlockBytes, 295 * kBlockBytes)) ASSERT_EQ(b, 0);
    fill(*a, 300, 2);

    // Shrink: the pages above go to the reserve; the blocks below stay.
    const size_t reserved0 = cuda::kv_pages_reserved(device);
    ASSERT_TRUE(a->resize(7, st).ok());
    EXPECT_GE(a->mapped_bytes(), kLayers * 7 * kBlockBytes);
    EXPECT_LT(a->mapped_bytes(), kLayers * 300 * kBlockBytes);
    const size_t given = cuda::kv_pages_reserved(device) - reserved0;
    EXPECT_GT(given, 0u);
    expect_filled(*a, 7, 2);

    // Another pool that grows takes those pages before any new one.
    auto b = cuda::KvPages::create(device, kLayers, kBlockBytes, 1, 400, st);
    ASSERT_TRUE(b.ok()) << b.error().message;
    const size_t before = cuda::kv_pages_reserved(device);
    ASSERT_TRUE(b->resize(200, st).ok());
    EXPECT_LT(cuda::kv_pages_reserved(device), before);
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    for (uint8_t x : read(*b, 0, 0, 200 * kBlockBytes)) ASSERT_EQ(x, 0) << "a reused page is cleared";
    expect_filled(*a, 7, 2);

    EXPECT_FALSE(a->resize(0, st).ok());
    EXPECT_FALSE(a->resize(401, st).ok());
    expect_filled(*a, 7, 2);
  }
  EXPECT_EQ(cuda::kv_pages_reserved(device), 0u) << "with no pool left, the reserve goes back to the driver";
  ASSERT_EQ(cudaStreamDestroy(st), cudaSuccess);
}

// 8 KiB of KV that may grow to 128 KiB: a few blocks of the test model
// (each backend stores KV in its own element type, so the counts differ).
constexpr size_t kSmall = 8 << 10, kLarge = 128 << 10;

std::unique_ptr<Engine> elastic_engine(std::shared_ptr<const DeviceContext> device) {
  return small_engine(std::move(device), RandomModelSpec{}, kSmall, kLarge);
}

TEST(CudaKvPages, AnEngineThatGrowsAndShrinksBetweenPassesMatchesTheCpuEngine) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  auto cpu = elastic_engine(nullptr);
  auto gpu = elastic_engine(ctx);
  ASSERT_TRUE(cpu && gpu);
  const int32_t small_blocks = gpu->kv().n_blocks();
  ASSERT_GE(small_blocks, 4);
  ASSERT_GE(cpu->kv().n_blocks(), 4);
  const int32_t V = cpu->config().vocab_size;
  auto step = [&](std::span<const RunItem> items) { expect_same_logits(*cpu, *gpu, items); };
  // A sequence in the small pool (13 tokens by the end: 4 blocks).
  for (Engine* e : {cpu.get(), gpu.get()}) ASSERT_TRUE(e->add_sequence(1, random_tokens(3, 9, V)).ok());
  RunItem one{1, RowSelect::Last, 0, {}};
  step(std::span(&one, 1));
  // Grown: a long sequence (38 blocks) that takes blocks far above the first.
  for (Engine* e : {cpu.get(), gpu.get()}) {
    Status s = e->resize_kv(kLarge);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  ASSERT_GT(gpu->kv().n_blocks(), 4 * small_blocks);
  for (Engine* e : {cpu.get(), gpu.get()}) ASSERT_TRUE(e->add_sequence(2, random_tokens(4, 150, V)).ok());
  std::vector<RunItem> both = {{1, RowSelect::Last, 0, {}}, {2, RowSelect::Last, 0, {}}};
  for (Engine* e : {cpu.get(), gpu.get()}) e->append(1, std::vector<int32_t>{7});
  step(both);
  // Shrunk back under the first sequence: it decodes on from the blocks kept.
  for (Engine* e : {cpu.get(), gpu.get()}) {
    e->release(2);
    Status s = e->resize_kv(kSmall);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  ASSERT_EQ(gpu->kv().n_blocks(), small_blocks);
  for (int k = 0; k < 3; ++k) {
    for (Engine* e : {cpu.get(), gpu.get()}) e->append(1, std::vector<int32_t>{(int32_t)((k * 17 + 3) % V)});
    step(std::span(&one, 1));
  }
}

}  // namespace
}  // namespace flashtts::test
