// The CPU backend: float32 weights and KV, BLAS for the matrix products, a
// thread pool for attention. The forward pass follows Hugging Face's
// Qwen2/Llama modeling code step for step, so that parity is exact up to
// float32 rounding.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "gpu/backend.h"
#include "gpu/batch_check.h"
#include "gpu/cpu/kernels.h"
#include "gpu/cpu/thread_pool.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace flashtts {

size_t kv_bytes_per_token_f32(const ModelConfig& c) {
  return 2ull * c.n_layers * c.n_kv_heads * c.head_dim * sizeof(float);
}

namespace {

int resolve_threads(int n) {
  if (n > 0) return n;
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(ModelConfig config, ModelWeights weights, const BackendOptions& o)
      : c_(std::move(config)), w_(std::move(weights)), o_(o), pool_(resolve_threads(o.n_threads)) {
    kv_dim_ = (int64_t)c_.n_kv_heads * c_.head_dim;
    q_dim_ = (int64_t)c_.n_heads * c_.head_dim;
    kv_.assign((size_t)c_.n_layers * o_.n_blocks * 2 * o_.block_size * kv_dim_, 0.0f);
    openblas_set_num_threads(pool_.size());
  }

  const ModelConfig& config() const override { return c_; }
  size_t kv_bytes_per_token() const override { return kv_bytes_per_token_f32(c_); }

  void copy_blocks(std::span<const BlockCopy> copies) override {
    const size_t block_floats = 2 * (size_t)o_.block_size * kv_dim_;
    for (int64_t l = 0; l < c_.n_layers; ++l)
      for (const BlockCopy& cp : copies)
        std::copy_n(block_ptr(l, cp.src), block_floats, block_ptr(l, cp.dst));
  }

  Status forward(std::span<const BatchEntry> batch, OutputKind kind, ForwardOutput* out) override;

 private:
  // KV storage: (n_layers, n_blocks, 2 [K,V], block_size, n_kv_heads * head_dim)
  float* block_ptr(int64_t layer, int32_t block) {
    return kv_.data() + ((size_t)layer * o_.n_blocks + block) * 2 * o_.block_size * kv_dim_;
  }
  float* kv_slot(int64_t layer, int32_t block, int kv, int32_t slot) {
    return block_ptr(layer, block) + ((size_t)kv * o_.block_size + slot) * kv_dim_;
  }

  void attention(int64_t layer, std::span<const BatchEntry> batch);
  void head(OutputKind kind, ForwardOutput* out);

  ModelConfig c_;
  ModelWeights w_;
  BackendOptions o_;
  ThreadPool pool_;
  int64_t kv_dim_ = 0, q_dim_ = 0;
  std::vector<float> kv_;

  // Per-call scratch, kept between calls so the hot path does not allocate
  // once the largest batch has been seen. T = tokens in the batch.
  std::vector<int32_t> pos_;      // (T) absolute position of each new token
  std::vector<int32_t> row_seq_;  // (T) batch entry of each new token
  std::vector<float> x_, xn_;     // (T, h)
  std::vector<float> q_, att_;    // (T, nh*hd)
  std::vector<float> k_, v_;      // (T, nkv*hd)
  std::vector<float> gate_, up_;  // (T, f)
  std::vector<float> cos_, sin_;  // (T, hd/2) RoPE angles, shared by q and k of every layer
  std::vector<int64_t> out_idx_;  // (R) token row of each requested output
  std::vector<float> hid_;        // (R, h) final-normed rows the head reads
  std::vector<float> mid_;        // (h) classifier PRM hidden layer
};

Status CpuBackend::forward(std::span<const BatchEntry> batch, OutputKind kind, ForwardOutput* out) {
  FLASHTTS_TRY(check_batch(c_, !w_.lm_head.empty(), o_.n_blocks, o_.block_size, batch, kind));
  const int64_t h = c_.hidden_size, f = c_.intermediate_size, hd = c_.head_dim;

  int64_t T = 0;
  for (const BatchEntry& b : batch) T += (int64_t)b.tokens.size();
  pos_.resize(T);
  row_seq_.resize(T);
  out_idx_.clear();
  {
    int64_t t = 0;
    for (size_t e = 0; e < batch.size(); ++e) {
      for (size_t i = 0; i < batch[e].tokens.size(); ++i, ++t) {
        pos_[t] = batch[e].n_past + (int32_t)i;
        row_seq_[t] = (int32_t)e;
      }
      for (int32_t r : batch[e].out_rows) out_idx_.push_back(t - (int64_t)batch[e].tokens.size() + r);
    }
  }
  x_.resize(T * h);
  xn_.resize(T * h);
  q_.resize(T * q_dim_);
  att_.resize(T * q_dim_);
  k_.resize(T * kv_dim_);
  v_.resize(T * kv_dim_);
  gate_.resize(T * f);
  up_.resize(T * f);
  cos_.resize(T * (hd / 2));
  sin_.resize(T * (hd / 2));
  cpu::rope_table(pos_.data(), T, hd, c_.rope_theta, cos_.data(), sin_.data());

  // Embedding lookup.
  {
    int64_t t = 0;
    for (const BatchEntry& b : batch)
      for (int32_t tok : b.tokens) std::copy_n(w_.tok_embd.data() + (int64_t)tok * h, h, x_.data() + (t++) * h);
  }

  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  for (int64_t l = 0; l < c_.n_layers; ++l) {
    const LayerWeights& L = w_.layers[l];
    cpu::rms_norm(x_.data(), L.attn_norm.data(), xn_.data(), T, h, c_.rms_eps);
    cpu::linear(xn_.data(), L.wq.data(), bias(L.bq), q_.data(), T, h, q_dim_);
    cpu::linear(xn_.data(), L.wk.data(), bias(L.bk), k_.data(), T, h, kv_dim_);
    cpu::linear(xn_.data(), L.wv.data(), bias(L.bv), v_.data(), T, h, kv_dim_);
    cpu::rope(q_.data(), cos_.data(), sin_.data(), T, c_.n_heads, hd);
    cpu::rope(k_.data(), cos_.data(), sin_.data(), T, c_.n_kv_heads, hd);

    // Write the new tokens' K and V into their slots before attending, so a
    // prefill chunk sees its own earlier tokens through the same paged path.
    for (int64_t t = 0; t < T; ++t) {
      const BatchEntry& b = batch[row_seq_[t]];
      int32_t p = pos_[t];
      int32_t blk = b.block_table[p / o_.block_size], slot = p % o_.block_size;
      std::copy_n(k_.data() + t * kv_dim_, kv_dim_, kv_slot(l, blk, 0, slot));
      std::copy_n(v_.data() + t * kv_dim_, kv_dim_, kv_slot(l, blk, 1, slot));
    }
    attention(l, batch);

    // x += att W_o^T (+ b_o)
    cpu::linear(att_.data(), L.wo.data(), bias(L.bo), xn_.data(), T, q_dim_, h);
    for (int64_t i = 0; i < T * h; ++i) x_[i] += xn_[i];

    cpu::rms_norm(x_.data(), L.ffn_norm.data(), xn_.data(), T, h, c_.rms_eps);
    cpu::linear(xn_.data(), L.w_gate.data(), bias(L.b_gate), gate_.data(), T, h, f);
    cpu::linear(xn_.data(), L.w_up.data(), bias(L.b_up), up_.data(), T, h, f);
    pool_.parallel_for(T, [&](int64_t b, int64_t e) { cpu::silu_mul(gate_.data() + b * f, up_.data() + b * f, (e - b) * f); });
    cpu::linear(gate_.data(), L.w_down.data(), bias(L.b_down), xn_.data(), T, f, h);
    for (int64_t i = 0; i < T * h; ++i) x_[i] += xn_[i];
  }

  head(kind, out);
  return Status::success();
}

void CpuBackend::attention(int64_t layer, std::span<const BatchEntry> batch) {
  const int64_t T = (int64_t)pos_.size(), nh = c_.n_heads, hd = c_.head_dim;
  const int64_t group = c_.n_heads / c_.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  pool_.parallel_for(T * nh, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t t = w / nh, head = w % nh, g = head / group;
      const BatchEntry& b = batch[row_seq_[t]];
      // Causal over positions first..pos; a sliding window (Mistral) keeps
      // only the last `sliding_window` of them, as HF's mask does.
      const int32_t pos = pos_[t];
      const int32_t first = c_.sliding_window > 0 ? std::max(0, pos - c_.sliding_window + 1) : 0;
      const int32_t n_ctx = pos + 1 - first;
      const float* q = q_.data() + t * q_dim_ + head * hd;
      scores.resize(n_ctx);
      for (int32_t i = 0; i < n_ctx; ++i) {
        const int32_t j = first + i;
        const float* k = kv_slot(layer, b.block_table[j / o_.block_size], 0, j % o_.block_size) + g * hd;
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s += q[d] * k[d];
        scores[i] = s * scale;
      }
      cpu::softmax(scores.data(), n_ctx);
      float* o = att_.data() + t * q_dim_ + head * hd;
      std::fill_n(o, hd, 0.0f);
      for (int32_t i = 0; i < n_ctx; ++i) {
        const int32_t j = first + i;
        const float* v = kv_slot(layer, b.block_table[j / o_.block_size], 1, j % o_.block_size) + g * hd;
        const float p = scores[i];
        for (int64_t d = 0; d < hd; ++d) o[d] += p * v[d];
      }
    }
  });
}

void CpuBackend::head(OutputKind kind, ForwardOutput* out) {
  const int64_t h = c_.hidden_size, R = (int64_t)out_idx_.size();
  // Final norm on the requested rows only.
  hid_.resize(R * h);
  for (int64_t r = 0; r < R; ++r)
    cpu::rms_norm(x_.data() + out_idx_[r] * h, w_.final_norm.data(), hid_.data() + r * h, 1, h, c_.rms_eps);

  out->n_rows = (int32_t)R;
  if (kind == OutputKind::Hidden) {
    out->width = (int32_t)h;
    out->data.assign(hid_.begin(), hid_.end());
    return;
  }
  if (kind == OutputKind::Logits) {
    out->width = c_.vocab_size;
    out->data.resize(R * c_.vocab_size);
    cpu::linear(hid_.data(), w_.output().data(), nullptr, out->data.data(), R, h, c_.vocab_size);
    return;
  }
  // Score: the step probability of each requested row.
  out->width = 1;
  out->data.resize(R);
  const PrmHeadWeights& P = w_.prm;
  for (int64_t r = 0; r < R; ++r) {
    const float* x = hid_.data() + r * h;
    switch (c_.prm.kind) {
      case PrmKind::Classifier: {
        mid_.resize(h);
        cpu::linear(x, P.w1.data(), P.b1.data(), mid_.data(), 1, h, h);
        for (float& m : mid_) m = std::max(m, 0.0f);
        float logit[2];
        cpu::linear(mid_.data(), P.w2.data(), P.b2.data(), logit, 1, h, 2);
        cpu::softmax(logit, 2);
        out->data[r] = logit[1];
        break;
      }
      case PrmKind::ValueHead: {
        float v = cblas_sdot((int)h, x, 1, P.w2.data(), 1) + (P.b2.empty() ? 0.0f : P.b2[0]);
        out->data[r] = 1.0f / (1.0f + std::exp(-v));
        break;
      }
      case PrmKind::LmLogits: {
        const float* W = w_.output().data();
        float logit[2] = {cblas_sdot((int)h, x, 1, W + (int64_t)c_.prm.good_token_id * h, 1),
                          cblas_sdot((int)h, x, 1, W + (int64_t)c_.prm.bad_token_id * h, 1)};
        cpu::softmax(logit, 2);
        out->data[r] = logit[0];
        break;
      }
      case PrmKind::None:
        break;  // rejected by check_batch()
    }
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(ModelConfig config, ModelWeights weights, const BackendOptions& options) {
  return std::make_unique<CpuBackend>(std::move(config), std::move(weights), options);
}

}  // namespace flashtts
