// The CUDA backend against the CPU backend on random-weight models of every
// architecture: the same batch (prefill chunks and decode steps, mixed),
// logits within 1e-2 relative error in bf16 and 1e-4 in f32, identical
// greedy tokens in f32, the same hidden states and PRM scores. Skipped where
// no CUDA device is present.
#include <gtest/gtest.h>

#include <numeric>

#include "gpu/cuda/cuda_backend.h"
#include "gpu/sampler.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts::test {
namespace {

constexpr int32_t kBlocks = 64;

struct Pair {
  std::unique_ptr<Backend> cpu;
  std::unique_ptr<CudaBackend> gpu;
};

Pair make_pair_of(const DeviceContext& ctx, const RandomModelSpec& spec, CudaDtype dtype, int32_t block_size = 16,
                  int32_t max_tokens = 2048, bool graphs = true) {
  auto [c, w] = random_model(spec);
  BackendOptions bo;
  bo.n_blocks = kBlocks;
  bo.block_size = block_size;
  bo.n_threads = 2;
  CudaBackendOptions co;
  co.dtype = dtype;
  co.max_tokens = max_tokens;
  co.graphs = graphs;
  auto gpu = make_cuda_backend(c, w, bo, co, ctx);
  EXPECT_TRUE(gpu.ok()) << (gpu.ok() ? "" : gpu.error().message);
  if (gpu.ok()) {  // the memory budget's estimate is what the backend takes
    int n_sms = 0;
    EXPECT_EQ(cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, ctx.cuda_device()), cudaSuccess);
    const size_t kv = kv_bytes_per_token_cuda(c, dtype) * (size_t)bo.n_blocks * bo.block_size;
    EXPECT_EQ((*gpu)->workspace_bytes() - kv, cuda_workspace_bytes(c, bo, co, n_sms));
    EXPECT_EQ((*gpu)->weight_bytes(), cuda_weight_bytes(c, w, co));
  }
  auto cpu = make_cpu_backend(c, w, bo);
  EXPECT_TRUE(cpu.ok()) << (cpu.ok() ? "" : cpu.error().message);
  return {cpu.ok() ? std::move(cpu).value() : nullptr, gpu.ok() ? std::move(gpu).value() : nullptr};
}

// Two sequences in disjoint blocks; entry e's table is blocks [e*16, e*16+16).
std::vector<int32_t> table_of(int32_t e) {
  std::vector<int32_t> t(16);
  std::iota(t.begin(), t.end(), e * 16);
  return t;
}

void expect_parity(Pair& p, std::span<const BatchEntry> batch, OutputKind kind, double tol) {
  ForwardOutput a, b;
  ASSERT_TRUE(p.cpu->forward(batch, kind, &a).ok());
  Status s = p.gpu->forward(batch, kind, &b);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(a.n_rows, b.n_rows);
  ASSERT_EQ(a.width, b.width);
  for (int32_t r = 0; r < a.n_rows; ++r) EXPECT_LE(rel_error(b.row(r), a.row(r)), tol) << "row " << r;
}

// Prefill of two sequences (all rows out), then decode steps of both.
void run_mixed(Pair& p, int32_t vocab, OutputKind kind, double tol) {
  auto ta = random_tokens(11, 23, vocab), tb = random_tokens(12, 9, vocab);
  auto tab_a = table_of(0), tab_b = table_of(1);
  std::vector<int32_t> rows_a(ta.size()), rows_b(tb.size());
  std::iota(rows_a.begin(), rows_a.end(), 0);
  std::iota(rows_b.begin(), rows_b.end(), 0);
  std::vector<BatchEntry> batch = {{ta, 0, tab_a, rows_a}, {tb, 0, tab_b, rows_b}};
  expect_parity(p, batch, kind, tol);
  const std::vector<int32_t> row0 = {0};
  for (int step = 0; step < 6; ++step) {
    std::vector<int32_t> na = {(int32_t)((step * 7 + 3) % vocab)}, nb = {(int32_t)((step * 5 + 1) % vocab)};
    std::vector<BatchEntry> d = {{na, (int32_t)ta.size() + step, tab_a, row0},
                                 {nb, (int32_t)tb.size() + step, tab_b, row0}};
    expect_parity(p, d, kind, tol);
  }
}

class CudaParity : public ::testing::TestWithParam<TestArch> {};

std::string arch_name(const ::testing::TestParamInfo<TestArch>& i) {
  static const char* const names[] = {"Qwen2", "Llama", "Qwen2Prm", "SkyworkPrm", "LmLogitsPrm", "MistralWindow"};
  return names[(int)i.param];
}

TEST_P(CudaParity, Bf16LogitsStayWithinOnePercentOfTheCpu) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  RandomModelSpec spec;
  spec.arch = GetParam();
  auto p = make_pair_of(*ctx, spec, CudaDtype::Bf16);
  ASSERT_TRUE(p.gpu);
  if (spec.arch == TestArch::Qwen2Prm || spec.arch == TestArch::SkyworkPrm) {
    run_mixed(p, spec.vocab, OutputKind::Score, 1e-2);
  } else {
    run_mixed(p, spec.vocab, OutputKind::Logits, 1e-2);
  }
}

TEST_P(CudaParity, F32HiddenStatesAndOutputsMatchTheCpuClosely) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  RandomModelSpec spec;
  spec.arch = GetParam();
  auto p = make_pair_of(*ctx, spec, CudaDtype::F32);
  ASSERT_TRUE(p.gpu);
  run_mixed(p, spec.vocab, OutputKind::Hidden, 1e-4);
  if (spec.arch == TestArch::Qwen2Prm || spec.arch == TestArch::SkyworkPrm || spec.arch == TestArch::LmLogitsPrm)
    run_mixed(p, spec.vocab, OutputKind::Score, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaParity,
                         ::testing::Values(TestArch::Qwen2, TestArch::Llama, TestArch::Qwen2Prm, TestArch::SkyworkPrm,
                                           TestArch::LmLogitsPrm, TestArch::MistralWindow),
                         arch_name);

TEST(CudaParity, F32GreedyDecodingPicksTheCpuTokens) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  for (TestArch arch : {TestArch::Qwen2, TestArch::Llama}) {
    RandomModelSpec spec;
    spec.arch = arch;
    auto p = make_pair_of(*ctx, spec, CudaDtype::F32);
    ASSERT_TRUE(p.gpu);
    auto tab = table_of(0);
    std::vector<int32_t> toks = random_tokens(21, 12, spec.vocab);
    int32_t n_past = 0;
    std::vector<int32_t> chunk = toks;
    for (int step = 0; step < 40; ++step) {
      std::vector<int32_t> out_row = {(int32_t)chunk.size() - 1};
      BatchEntry e{chunk, n_past, tab, out_row};
      ForwardOutput a, b;
      ASSERT_TRUE(p.cpu->forward(std::span(&e, 1), OutputKind::Logits, &a).ok());
      ASSERT_TRUE(p.gpu->forward(std::span(&e, 1), OutputKind::Logits, &b).ok());
      const int32_t ta = argmax(a.row(0)), tb = argmax(b.row(0));
      ASSERT_EQ(ta, tb) << "arch " << (int)arch << " step " << step;
      n_past += (int32_t)chunk.size();
      chunk = {ta};
    }
    EXPECT_GT(p.gpu->graphs_captured(), 0) << "decode steps of batch 1 recur: a graph should be captured";
  }
}

TEST(CudaParity, SmallWorkspacesCutTheBatchIntoPiecesWithTheSameResult) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  RandomModelSpec spec;
  auto p = make_pair_of(*ctx, spec, CudaDtype::F32, 16, /*max_tokens=*/8);
  ASSERT_TRUE(p.gpu);
  run_mixed(p, spec.vocab, OutputKind::Logits, 1e-4);
}

TEST(CudaParity, GraphsOffGiveTheSameLogitsAsGraphsOn) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  RandomModelSpec spec;
  auto on = make_pair_of(*ctx, spec, CudaDtype::Bf16, 16, 2048, true);
  auto off = make_pair_of(*ctx, spec, CudaDtype::Bf16, 16, 2048, false);
  ASSERT_TRUE(on.gpu && off.gpu);
  auto tab = table_of(0);
  auto toks = random_tokens(31, 10, spec.vocab);
  std::vector<int32_t> last = {9}, row0 = {0};
  BatchEntry e{toks, 0, tab, last};
  ForwardOutput a, b;
  ASSERT_TRUE(on.gpu->forward(std::span(&e, 1), OutputKind::Logits, &a).ok());
  ASSERT_TRUE(off.gpu->forward(std::span(&e, 1), OutputKind::Logits, &b).ok());
  for (int step = 0; step < 5; ++step) {
    std::vector<int32_t> t = {(int32_t)(step + 2)};
    BatchEntry d{t, 10 + step, tab, row0};
    ASSERT_TRUE(on.gpu->forward(std::span(&d, 1), OutputKind::Logits, &a).ok());
    ASSERT_TRUE(off.gpu->forward(std::span(&d, 1), OutputKind::Logits, &b).ok());
    EXPECT_EQ(a.data, b.data) << "step " << step;
  }
  EXPECT_GT(on.gpu->graph_replays(), 0);
  EXPECT_EQ(off.gpu->graphs_captured(), 0);
}

TEST(CudaParity, BadInputsGetTheCpuBackendsErrors) {
  FLASHTTS_REQUIRE_CUDA(ctx);
  RandomModelSpec spec;
  auto p = make_pair_of(*ctx, spec, CudaDtype::Bf16);
  ASSERT_TRUE(p.gpu);
  auto tab = table_of(0);
  std::vector<int32_t> bad = {spec.vocab + 3}, row0 = {0};
  BatchEntry e{bad, 0, tab, row0};
  ForwardOutput a, b;
  Status sa = p.cpu->forward(std::span(&e, 1), OutputKind::Logits, &a);
  Status sb = p.gpu->forward(std::span(&e, 1), OutputKind::Logits, &b);
  ASSERT_FALSE(sa.ok());
  ASSERT_FALSE(sb.ok());
  EXPECT_EQ(sa.message(), sb.message());
}

}  // namespace
}  // namespace flashtts::test
