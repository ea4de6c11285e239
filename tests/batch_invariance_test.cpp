// The CPU engine's batch invariance end to end, on every instruction-set path
// this CPU has, for float32 and bfloat16 weights: a sequence's logits are the
// same bits whether it is computed alone on one thread or in a batch of 1..64
// sequences (prefill and decode) under any thread count up to the cores.
// Shapes are awkward on purpose (hidden 40, head_dim 10, intermediate 72):
// every product has a partial lane group.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "gpu/cpu/matmul.h"
#include "gpu/engine.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using test::randn;

constexpr int kSeqs = 64;

std::pair<ModelConfig, ModelWeights> awkward_model(DType dt) {
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = 40;
  c.intermediate_size = 72;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 10;
  c.vocab_size = 131;
  c.max_position = 256;
  c.rope_theta = 10000.0f;
  c.qkv_bias = true;
  std::mt19937 rng(11);
  const size_t h = 40, f = 72, q = 40, kv = 20;
  auto mat = [&](size_t n) { return WeightMatrix(randn(rng, n, 0.2f)).converted(dt); };
  ModelWeights w;
  w.tok_embd = mat(c.vocab_size * h);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm = randn(rng, h, 0.1f, 1.0f);
    L.wq = mat(q * h), L.bq = randn(rng, q, 0.1f);
    L.wk = mat(kv * h), L.bk = randn(rng, kv, 0.1f);
    L.wv = mat(kv * h), L.bv = randn(rng, kv, 0.1f);
    L.wo = mat(h * q);
    L.ffn_norm = randn(rng, h, 0.1f, 1.0f);
    L.w_gate = mat(f * h), L.w_up = mat(f * h), L.w_down = mat(h * f);
    w.layers.push_back(std::move(L));
  }
  w.final_norm = randn(rng, h, 0.1f, 1.0f);
  w.lm_head = mat(c.vocab_size * h);
  return {c, w};
}

// Prompts of 3..24 tokens, and one decode token each.
std::vector<std::vector<int32_t>> prompts() {
  std::mt19937 rng(12);
  std::vector<std::vector<int32_t>> p(kSeqs);
  for (auto& t : p) {
    t.resize(3 + rng() % 22);
    for (auto& x : t) x = int32_t(rng() % 131);
  }
  return p;
}

// Last-row logits of every sequence after its prefill, then after one decode
// token, running `batch` sequences per forward pass.
std::vector<float> logits(DType dt, int threads, int batch) {
  auto [c, w] = awkward_model(dt);
  EngineOptions o;
  o.kv_bytes = 8 << 20;
  o.block_size = 8;
  o.n_threads = threads;
  auto e = Engine::create(c, w, o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  if (!e.ok()) return {};
  const auto p = prompts();
  std::vector<float> out(2 * kSeqs * c.vocab_size);
  for (int step = 0; step < 2; ++step)
    for (int first = 0; first < kSeqs; first += batch) {
      std::vector<RunItem> items;
      for (int s = first; s < std::min(kSeqs, first + batch); ++s) {
        if (step == 0) EXPECT_TRUE((*e)->add_sequence(s, p[s], false).ok());
        else (*e)->append(s, std::vector<int32_t>{int32_t((s * 7) % 131)});
        items.push_back({s, RowSelect::Last, 0, {}});
      }
      RunResult r;
      EXPECT_TRUE((*e)->run(items, OutputKind::Logits, &r).ok());
      EXPECT_EQ(r.out.n_rows, (int32_t)items.size());
      for (int i = 0; i < r.out.n_rows; ++i)
        std::memcpy(out.data() + ((size_t)step * kSeqs + first + i) * c.vocab_size, r.out.row(i).data(),
                    c.vocab_size * sizeof(float));
    }
  return out;
}

class EngineInvariance : public ::testing::TestWithParam<DType> {};

TEST_P(EngineInvariance, EverySequenceGetsTheSameBitsUnderEveryBatchSizeAndThreadCount) {
  const char* old = std::getenv("FLASHTTS_CPU_ISA");
  const std::string saved = old ? old : "";
  const int max_threads = std::max(2, (int)std::thread::hardware_concurrency());
  for (cpu::Isa isa : {cpu::Isa::Portable, cpu::Isa::Avx2, cpu::Isa::Avx512}) {
    if (!cpu::isa_supported(isa)) continue;
    setenv("FLASHTTS_CPU_ISA", cpu::isa_name(isa), 1);
    const std::vector<float> alone = logits(GetParam(), 1, 1);
    ASSERT_FALSE(alone.empty());
    for (int threads = 1; threads <= max_threads; ++threads)
      for (int batch = 1; batch <= kSeqs; ++batch) {
        if (threads == 1 && batch == 1) continue;
        const std::vector<float> got = logits(GetParam(), threads, batch);
        ASSERT_EQ(got.size(), alone.size());
        ASSERT_EQ(std::memcmp(got.data(), alone.data(), got.size() * sizeof(float)), 0)
            << cpu::isa_name(isa) << " threads=" << threads << " batch=" << batch;
      }
  }
  if (old) setenv("FLASHTTS_CPU_ISA", saved.c_str(), 1);
  else unsetenv("FLASHTTS_CPU_ISA");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, EngineInvariance, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace flashtts
