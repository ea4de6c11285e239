// The CUDA backend's workspace size, as the memory budget reads it before
// any backend exists (cuda_workspace_bytes, gpu/cuda/cuda_backend.h): for the
// paper's 1.5B policy and 7B PRM shapes it is the buffers' sum from the
// shapes, counted here by hand. Host arithmetic: runs everywhere. On a GPU,
// cuda_parity_test checks a live backend takes exactly this.
#include <gtest/gtest.h>

#include "gpu/cuda/cuda_backend.h"

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

}  // namespace
}  // namespace flashtts
