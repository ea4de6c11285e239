#include "tests/gpu/gpu_test_util.h"
#include "tests/test_support.h"

#include <cmath>
#include <random>

namespace flashtts::test {

std::shared_ptr<const DeviceContext> cuda_device(std::string* why) {
  auto d = DeviceContext::open("cuda");
  if (!d) {
    *why = d.error().message;
    return nullptr;
  }
  return *d;
}

std::pair<ModelConfig, ModelWeights> random_model(const RandomModelSpec& s) {
  ModelConfig c;
  const bool llama = s.arch == TestArch::Llama || s.arch == TestArch::MistralWindow;
  c.arch = s.arch == TestArch::Llama ? Arch::Llama : s.arch == TestArch::MistralWindow ? Arch::Mistral : Arch::Qwen2;
  c.architecture = llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM";
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.vocab_size = s.vocab;
  c.max_position = 1024;
  c.rope_theta = llama ? 500000.0f : 10000.0f;
  c.rms_eps = llama ? 1e-5f : 1e-6f;
  c.qkv_bias = s.arch != TestArch::MistralWindow;
  c.o_bias = s.arch == TestArch::Llama;  // Llama attention_bias = true biases o_proj too
  c.mlp_bias = s.arch == TestArch::Llama;
  c.tie_embeddings = s.arch == TestArch::Llama;
  if (s.arch == TestArch::MistralWindow) c.sliding_window = 7;
  std::mt19937 rng(s.seed);
  const size_t h = c.hidden_size, f = c.intermediate_size, q = (size_t)c.n_heads * c.head_dim,
               kv = (size_t)c.n_kv_heads * c.head_dim;
  ModelWeights w;
  w.tok_embd = randn(rng, c.vocab_size * h, 0.5f);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm = randn(rng, h, 0.1f, 1.0f);
    L.wq = randn(rng, q * h, 0.15f);
    L.wk = randn(rng, kv * h, 0.15f);
    L.wv = randn(rng, kv * h, 0.15f);
    if (c.qkv_bias || c.o_bias) {
      L.bq = randn(rng, q, 0.1f);
      L.bk = randn(rng, kv, 0.1f);
      L.bv = randn(rng, kv, 0.1f);
    }
    L.wo = randn(rng, h * q, 0.15f);
    if (c.o_bias) L.bo = randn(rng, h, 0.1f);
    L.ffn_norm = randn(rng, h, 0.1f, 1.0f);
    L.w_gate = randn(rng, f * h, 0.15f);
    L.w_up = randn(rng, f * h, 0.15f);
    L.w_down = randn(rng, h * f, 0.15f);
    if (c.mlp_bias) {
      L.b_gate = randn(rng, f, 0.1f);
      L.b_up = randn(rng, f, 0.1f);
      L.b_down = randn(rng, h, 0.1f);
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm = randn(rng, h, 0.1f, 1.0f);
  if (!c.tie_embeddings && s.arch != TestArch::Qwen2Prm && s.arch != TestArch::SkyworkPrm)
    w.lm_head = randn(rng, c.vocab_size * h, 0.2f);
  switch (s.arch) {
    case TestArch::Qwen2Prm:
      c.prm.kind = PrmKind::Classifier;
      w.prm.w1 = randn(rng, h * h, 0.15f);
      w.prm.b1 = randn(rng, h, 0.1f);
      w.prm.w2 = randn(rng, 2 * h, 0.2f);
      w.prm.b2 = randn(rng, 2, 0.1f);
      c.prm.step_tag_ids = {5};
      break;
    case TestArch::SkyworkPrm:
      c.prm.kind = PrmKind::ValueHead;
      w.prm.w2 = randn(rng, h, 0.2f);
      w.prm.b2 = randn(rng, 1, 0.1f);
      c.prm.step_tag_ids = {5};
      break;
    case TestArch::LmLogitsPrm:
      c.prm.kind = PrmKind::LmLogits;
      c.prm.good_token_id = 7;
      c.prm.bad_token_id = 9;
      c.prm.step_tag_ids = {5};
      break;
    default:
      break;
  }
  return {c, w};
}

double rel_error(std::span<const float> a, std::span<const float> b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = (double)a[i] - b[i];
    if (std::isnan(a[i])) return INFINITY;
    num += d * d;
    den += (double)b[i] * b[i];
  }
  if (a.size() != b.size()) return INFINITY;
  return std::sqrt(num / std::max(den, 1e-30));
}

std::unique_ptr<Engine> small_engine(std::shared_ptr<const DeviceContext> device, const RandomModelSpec& spec,
                                     size_t kv_bytes, size_t kv_bytes_max) {
  auto [c, w] = random_model(spec);
  EngineOptions o;
  o.kv_bytes = kv_bytes;
  o.kv_bytes_max = kv_bytes_max;
  o.block_size = 4;
  o.n_threads = 2;
  o.device = std::move(device);
  auto e = Engine::create(c, w, o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  return e.ok() ? std::move(e).value() : nullptr;
}

std::vector<int32_t> random_tokens(uint32_t seed, size_t n, int32_t vocab) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)(rng() % vocab);
  return t;
}

void expect_same_logits(Engine& cpu, Engine& gpu, std::span<const RunItem> items, double tolerance) {
  RunResult a, b;
  ASSERT_TRUE(cpu.run(items, OutputKind::Logits, &a).ok());
  Status s = gpu.run(items, OutputKind::Logits, &b);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(a.out.n_rows, b.out.n_rows);
  for (int32_t r = 0; r < a.out.n_rows; ++r) EXPECT_LE(rel_error(b.out.row(r), a.out.row(r)), tolerance) << "row " << r;
}

}  // namespace flashtts::test
