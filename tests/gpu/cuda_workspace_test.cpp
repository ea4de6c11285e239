// The CUDA backend's workspace size, as the memory budget reads it before
// any backend exists (cuda_workspace_bytes, gpu/cuda/cuda_backend.h): for the
// paper's 1.5B policy and 7B PRM shapes it is the buffers' sum from the
// shapes, counted here by hand. The weights' device size likewise
// (cuda_weight_bytes: what the memory budget counts for them). Host
// arithmetic: runs everywhere. On a GPU, cuda_parity_test checks a live
// backend takes exactly these.
#include <gtest/gtest.h>

#include "gpu/cuda/cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"

namespace flashtts {
namespace {

// Qwen2 shapes (config.json of Qwen2.5-Math-1.5B and Skywork-o1-PRM-7B).
ModelConfig shape(int32_t h, int32_t layers, int32_t heads, int32_t kv_heads, int32_t f, int32_t vocab, bool prm) {
  ModelConfig c;
  c.hidden_size = h, c.n_layers = layers, c.n_heads = heads, c.n_kv_heads = kv_heads, c.head_dim = h / heads;
  c.intermediate_size = f, c.vocab_size = vocab;
  if (prm) c.prm.kind = PrmKind::Classifier;
  return c;
}

// The buffers of a pass of M tokens, by hand: float32 residual, GEMM outputs
// and final rows; bf16 GEMM inputs; LM-head rows of the whole vocabulary;
// the metadata ints; cuBLAS's 32 MiB.
int64_t by_hand(const ModelConfig& c, int64_t M, int64_t lm_rows, int64_t n_blocks) {
  const int64_t h = c.hidden_size, f = c.intermediate_size, q = (int64_t)c.n_heads * c.head_dim,
                kv = (int64_t)c.n_kv_heads * c.head_dim;
  const bool classifier = c.prm.kind == PrmKind::Classifier;
  const int64_t per_token = 4 * h + 2 * h + 4 * (q + 2 * kv) + 4 * q + 2 * q + 4 * h + 8 * f + 2 * f + 4 * h + 2 * h +
                            (classifier ? 4 * h : 0) + 4;
  const int64_t meta = 4 * (5 * M + std::max(2 * n_blocks, 64 * M));
  return M * per_token + lm_rows * (int64_t)c.vocab_size * 4 + meta + (32ll << 20);
}

TEST(CudaWorkspace, ThePapersShapesTakeTheSumOfTheirBuffers) {
  const ModelConfig policy = shape(1536, 28, 12, 2, 8960, 151936, false);
  const ModelConfig prm = shape(3584, 28, 28, 4, 18944, 152064, true);
  BackendOptions o;
  o.n_blocks = 1000, o.block_size = 16;
  const CudaBackendOptions co;  // the engine's: bf16, 2048 tokens a pass, 256 LM-head rows
  for (const ModelConfig* c : {&policy, &prm}) {
    const int64_t expected = by_hand(*c, co.max_tokens, co.logits_rows, o.n_blocks);
    for (int32_t n_sms : {16, 132}) {
      const int64_t got = (int64_t)cuda_workspace_bytes(*c, o, co, n_sms);
      EXPECT_GE(got, expected) << "n_sms " << n_sms;
      // 17 buffers aligned to 256 bytes, and the attention's split states
      // (a few MiB at most for short decode batches).
      EXPECT_LE(got, expected + 17 * 256 + (16ll << 20)) << "n_sms " << n_sms;
    }
  }
  // About 0.43 GiB and 0.75 GiB: more than the 5% margin of a 24 GB card
  // leaves once the CUDA context took its share, hence the budget counts them.
  EXPECT_GT(cuda_workspace_bytes(policy, o, co, 128) + cuda_workspace_bytes(prm, o, co, 128), 1200ull << 20);
}

TEST(CudaWorkspace, FewerTokensAPassTakeLess) {
  const ModelConfig policy = shape(1536, 28, 12, 2, 8960, 151936, false);
  BackendOptions o;
  o.n_blocks = 1000, o.block_size = 16;
  CudaBackendOptions small;
  small.max_tokens = 512;
  EXPECT_LT(cuda_workspace_bytes(policy, o, small, 132), cuda_workspace_bytes(policy, o, CudaBackendOptions{}, 132));
}

// The weights on the device: matrices (q/k/v, gate/up fused) in the
// backend's element type, norms, biases, the PRM's last layer and the RoPE
// frequencies in float32; each tensor aligned to 256 bytes.
TEST(CudaWeights, MatricesTakeTheBackendsElementTypeWhateverTheFolderStores) {
  for (test::TestArch arch : {test::TestArch::Qwen2, test::TestArch::Llama, test::TestArch::SkyworkPrm}) {
    test::RandomModelSpec spec;
    spec.arch = arch;
    const auto [c, w] = test::random_model(spec);  // float32, as a float32 checkpoint loads
    int64_t matrices = (int64_t)w.tok_embd.size() + (int64_t)w.lm_head.size() + (int64_t)w.prm.w1.size(), floats = 0;
    int64_t tensors = 3 + (w.lm_head.empty() ? 0 : 1) + (w.prm.w1.empty() ? 0 : 2) + (w.prm.w2.empty() ? 0 : 2);
    for (const LayerWeights& L : w.layers) {
      matrices += (int64_t)(L.wq.size() + L.wk.size() + L.wv.size() + L.wo.size() + L.w_gate.size() + L.w_up.size() +
                            L.w_down.size());
      floats += (int64_t)(L.attn_norm.size() + L.ffn_norm.size() + L.bq.size() + L.bk.size() + L.bv.size() +
                          L.bo.size() + L.b_gate.size() + L.b_up.size() + L.b_down.size());
      tensors += 10;
    }
    floats += (int64_t)(w.final_norm.size() + w.prm.b1.size() + w.prm.w2.size() + w.prm.b2.size()) + c.head_dim / 2;
    CudaBackendOptions bf16, f32;
    f32.dtype = CudaDtype::F32;
    const int64_t got = (int64_t)cuda_weight_bytes(c, w, bf16);
    EXPECT_GE(got, 2 * matrices + 4 * floats) << (int)arch;
    EXPECT_LE(got, 2 * matrices + 4 * floats + 256 * tensors) << (int)arch;
    const int64_t got32 = (int64_t)cuda_weight_bytes(c, w, f32);
    EXPECT_GE(got32, 4 * matrices + 4 * floats) << (int)arch;
    EXPECT_LE(got32, 4 * matrices + 4 * floats + 256 * tensors) << (int)arch;
    // A float32 folder in bf16 on the device: about half its host size.
    EXPECT_LT(got, w.bytes() * 6 / 10) << (int)arch;
    // The same bf16 size from a bf16 copy of the weights.
    ModelWeights half = w;
    half.tok_embd = w.tok_embd.converted(DType::BF16);
    EXPECT_EQ((int64_t)cuda_weight_bytes(c, half, bf16), got) << (int)arch;
  }
}

}  // namespace
}  // namespace flashtts
