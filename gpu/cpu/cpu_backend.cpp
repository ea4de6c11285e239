// The CPU backend: weights in their stored dtype (gpu/weights.h), float32
// activations and KV, batch-invariant matrix products of our own
// (gpu/cpu/matmul.h), and one thread pool for every loop that pays for it.
// The forward pass follows Hugging Face's Qwen2/Llama modeling code step for
// step, so that parity is exact up to float32 rounding, and every row is
// computed the same way whatever shares its batch.
//
// The KV pool lives in a host arena sized for max_blocks (gpu/cpu/host_arena.h):
// it grows by using more of it and gives a shrink's pages back, and a block
// never moves, so block ids stay valid across a resize.
#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "gpu/backend.h"
#include "gpu/batch_check.h"
#include "gpu/cpu/host_arena.h"
#include "gpu/cpu/kernels.h"
#include "gpu/cpu/matmul.h"
#include "gpu/cpu/thread_pool.h"

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
  // REQUIRES: 0 < o.n_blocks <= o.max_blocks; kv holds kv_floats(c, o) floats.
  CpuBackend(ModelConfig config, ModelWeights weights, const BackendOptions& o, cpu::Isa isa, HostArena kv)
      : c_(std::move(config)), w_(std::move(weights)), o_(o), isa_(isa), pool_(resolve_threads(o.n_threads)),
        kv_(std::move(kv)) {
    kv_dim_ = (int64_t)c_.n_kv_heads * c_.head_dim;
    q_dim_ = (int64_t)c_.n_heads * c_.head_dim;
    inv_freq_.resize(c_.head_dim / 2);
    cpu::rope_inv_freq(c_.head_dim, c_.rope_theta, inv_freq_.data());
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

  Status resize_kv(int32_t n_blocks) override {
    if (n_blocks < 1 || n_blocks > o_.max_blocks)
      return make_error("CPU backend: a KV pool of " + std::to_string(n_blocks) + " blocks is outside the 1 to " +
                        std::to_string(o_.max_blocks) + " reserved");
    // Each layer's dropped tail goes back to the system; the blocks below keep their pages.
    const size_t block_bytes = 2 * (size_t)o_.block_size * kv_dim_ * sizeof(float);
    for (int64_t l = 0; n_blocks < o_.n_blocks && l < c_.n_layers; ++l)
      kv_.release((char*)block_ptr(l, n_blocks) - (char*)kv_.data(), (size_t)(o_.n_blocks - n_blocks) * block_bytes);
    o_.n_blocks = n_blocks;
    return Status::success();
  }

  // Floats of the KV storage for o.max_blocks blocks.
  static size_t kv_floats(const ModelConfig& c, const BackendOptions& o) {
    return (size_t)c.n_layers * o.max_blocks * 2 * o.block_size * c.n_kv_heads * c.head_dim;
  }

 private:
  // KV storage: (n_layers, max_blocks, 2 [K,V], block_size, n_kv_heads * head_dim),
  // of which blocks [0, n_blocks) of each layer are in use.
  float* block_ptr(int64_t layer, int32_t block) {
    return static_cast<float*>(kv_.data()) + ((size_t)layer * o_.max_blocks + block) * 2 * o_.block_size * kv_dim_;
  }
  float* kv_slot(int64_t layer, int32_t block, int kv, int32_t slot) {
    return block_ptr(layer, block) + ((size_t)kv * o_.block_size + slot) * kv_dim_;
  }

  void attention(int64_t layer, std::span<const BatchEntry> batch);
  void head(OutputKind kind, ForwardOutput* out);

  // y (n, rows of w) = x w^T + b: w is an (out, in) matrix of the model.
  void linear(const float* x, const WeightMatrix& w, const std::vector<float>& b, float* y, int64_t n, int64_t in,
              int64_t out) {
    cpu::matmul(isa_, x, cpu::view(w, out, in), bias(b), y, n, &pool_);
  }
  static const float* bias(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }
  // fn(begin, end) over n rows of `width` values: split across the pool when
  // the work outweighs waking it.
  template <class Fn>
  void rows(int64_t n, int64_t width, Fn&& fn) {
    if (n * width >= kParallelValues) pool_.parallel_for(n, fn);
    else fn(0, n);
  }
  static constexpr int64_t kParallelValues = 16384;

  ModelConfig c_;
  ModelWeights w_;
  BackendOptions o_;  // n_blocks: the current size of the KV pool
  cpu::Isa isa_;
  ThreadPool pool_;
  HostArena kv_;
  std::vector<float> inv_freq_;  // (hd/2) RoPE frequencies
  int64_t kv_dim_ = 0, q_dim_ = 0;

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
  std::vector<float> mid_;        // (R, h) classifier PRM hidden layer
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
  rows(T, hd, [&](int64_t b, int64_t e) {
    cpu::rope_table(pos_.data() + b, e - b, hd, inv_freq_.data(), cos_.data() + b * (hd / 2), sin_.data() + b * (hd / 2));
  });

  // Embedding lookup, converted from the stored dtype.
  {
    int64_t t = 0;
    for (const BatchEntry& b : batch)
      for (int32_t tok : b.tokens) w_.tok_embd.copy_row(tok, h, x_.data() + (t++) * h);
  }

  const float eps = c_.rms_eps;
  auto norm = [&](const std::vector<float>& w) {
    rows(T, h, [&](int64_t b, int64_t e) { cpu::rms_norm(x_.data() + b * h, w.data(), xn_.data() + b * h, e - b, h, eps); });
  };
  auto add_residual = [&] {  // x += xn
    rows(T, h, [&](int64_t b, int64_t e) {
      for (int64_t i = b * h; i < e * h; ++i) x_[i] += xn_[i];
    });
  };
  for (int64_t l = 0; l < c_.n_layers; ++l) {
    const LayerWeights& L = w_.layers[l];
    norm(L.attn_norm);
    {
      const cpu::Product qkv[] = {{cpu::view(L.wq, q_dim_, h), bias(L.bq), q_.data()},
                                  {cpu::view(L.wk, kv_dim_, h), bias(L.bk), k_.data()},
                                  {cpu::view(L.wv, kv_dim_, h), bias(L.bv), v_.data()}};
      cpu::matmul_many(isa_, xn_.data(), qkv, T, &pool_);
    }
    rows(T, q_dim_, [&](int64_t b, int64_t e) {
      const int64_t half = hd / 2;
      cpu::rope(q_.data() + b * q_dim_, cos_.data() + b * half, sin_.data() + b * half, e - b, c_.n_heads, hd);
      cpu::rope(k_.data() + b * kv_dim_, cos_.data() + b * half, sin_.data() + b * half, e - b, c_.n_kv_heads, hd);
    });

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

    linear(att_.data(), L.wo, L.bo, xn_.data(), T, q_dim_, h);  // x += att W_o^T (+ b_o)
    add_residual();

    norm(L.ffn_norm);
    {
      const cpu::Product gate_up[] = {{cpu::view(L.w_gate, f, h), bias(L.b_gate), gate_.data()},
                                      {cpu::view(L.w_up, f, h), bias(L.b_up), up_.data()}};
      cpu::matmul_many(isa_, xn_.data(), gate_up, T, &pool_);
    }
    rows(T, f, [&](int64_t b, int64_t e) { cpu::silu_mul(gate_.data() + b * f, up_.data() + b * f, (e - b) * f); });
    linear(gate_.data(), L.w_down, L.b_down, xn_.data(), T, f, h);
    add_residual();
  }

  head(kind, out);
  return Status::success();
}

void CpuBackend::attention(int64_t layer, std::span<const BatchEntry> batch) {
  const int64_t T = (int64_t)pos_.size(), nkv = c_.n_kv_heads, hd = c_.head_dim, bs = o_.block_size;
  const int64_t group = c_.n_heads / nkv;
  const float scale = 1.0f / std::sqrt((float)hd);
  int64_t work = 0;  // multiply-adds of the scores and the weighted sum
  for (int64_t t = 0; t < T; ++t) work += 2 * (int64_t)(pos_[t] + 1) * c_.n_heads * hd;
  // One item: token t's `group` query heads that share KV head g, against
  // their context one KV block at a time, so that a key is read once for the
  // whole group: scores (group, n_ctx) as dot products in the fixed order of
  // every product here, a softmax per head, the values weighted in context
  // order. Nothing depends on the other rows of the batch.
  auto items = [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t t = w / nkv, g = w % nkv;
      const BatchEntry& b = batch[row_seq_[t]];
      // Causal over positions first..pos; a sliding window (Mistral) keeps
      // only the last `sliding_window` of them, as HF's mask does.
      const int32_t pos = pos_[t];
      const int32_t first = c_.sliding_window > 0 ? std::max(0, pos - c_.sliding_window + 1) : 0;
      const int32_t n_ctx = pos + 1 - first;
      const float* q = q_.data() + t * q_dim_ + g * group * hd;  // (group, hd)
      scores.resize((size_t)group * n_ctx);
      for (int32_t i = 0; i < n_ctx;) {
        const int32_t j = first + i, slot = int32_t(j % bs);
        const int32_t len = std::min<int32_t>(int32_t(bs) - slot, n_ctx - i);
        const float* k = kv_slot(layer, b.block_table[j / bs], 0, slot) + g * hd;  // (len, hd), rows kv_dim apart
        cpu::dot_rows(isa_, q, hd, group, cpu::MatrixView{DType::F32, k, len, hd, kv_dim_}, scores.data() + i, n_ctx);
        i += len;
      }
      for (int64_t h = 0; h < group; ++h) {
        float* s = scores.data() + h * n_ctx;
        for (int32_t i = 0; i < n_ctx; ++i) s[i] *= scale;
        cpu::softmax(s, n_ctx);
      }
      float* o = att_.data() + t * q_dim_ + g * group * hd;  // (group, hd)
      std::fill_n(o, group * hd, 0.0f);
      for (int32_t i = 0; i < n_ctx; ++i) {
        const int32_t j = first + i;
        const float* v = kv_slot(layer, b.block_table[j / bs], 1, j % bs) + g * hd;
        for (int64_t h = 0; h < group; ++h) {
          const float p = scores[h * n_ctx + i];
          float* oh = o + h * hd;
          for (int64_t d = 0; d < hd; ++d) oh[d] += p * v[d];
        }
      }
    }
  };
  if (work >= kParallelValues) pool_.parallel_for(T * nkv, items);
  else items(0, T * nkv);
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
    linear(hid_.data(), w_.output(), {}, out->data.data(), R, h, c_.vocab_size);
    return;
  }
  // Score: the step probability of each requested row.
  out->width = 1;
  out->data.resize(R);
  const PrmHeadWeights& P = w_.prm;
  switch (c_.prm.kind) {
    case PrmKind::Classifier: {  // softmax(relu(x W1^T + b1) W2^T + b2)[1]
      mid_.resize(R * h);
      linear(hid_.data(), P.w1, P.b1, mid_.data(), R, h, h);
      for (float& m : mid_) m = std::max(m, 0.0f);
      std::vector<float> logit(R * 2);
      linear(mid_.data(), P.w2, P.b2, logit.data(), R, h, 2);
      for (int64_t r = 0; r < R; ++r) {
        cpu::softmax(logit.data() + 2 * r, 2);
        out->data[r] = logit[2 * r + 1];
      }
      break;
    }
    case PrmKind::ValueHead: {  // sigmoid(x w^T + b)
      linear(hid_.data(), P.w2, P.b2, out->data.data(), R, h, 1);
      for (float& v : out->data) v = 1.0f / (1.0f + std::exp(-v));
      break;
    }
    case PrmKind::LmLogits: {  // softmax over the good and bad tokens' logits, good first
      const cpu::MatrixView W = cpu::view(w_.output(), c_.vocab_size, h);
      std::vector<float> good(R), bad(R);
      cpu::matmul(isa_, hid_.data(), W.slice(c_.prm.good_token_id, 1), nullptr, good.data(), R, &pool_);
      cpu::matmul(isa_, hid_.data(), W.slice(c_.prm.bad_token_id, 1), nullptr, bad.data(), R, &pool_);
      for (int64_t r = 0; r < R; ++r) {
        float logit[2] = {good[r], bad[r]};
        cpu::softmax(logit, 2);
        out->data[r] = logit[0];
      }
      break;
    }
    case PrmKind::None:
      break;  // rejected by check_batch()
  }
}

}  // namespace

Expected<std::unique_ptr<Backend>> make_cpu_backend(ModelConfig config, ModelWeights weights,
                                                    const BackendOptions& options) {
  auto isa = cpu::isa_from_env();
  if (!isa) return isa.error();
  BackendOptions o = options;
  if (o.max_blocks == 0) o.max_blocks = o.n_blocks;
  if (o.n_blocks <= 0 || o.block_size <= 0 || o.max_blocks < o.n_blocks)
    return make_error("CPU backend: need 0 < n_blocks <= max_blocks and block_size > 0, got n_blocks " +
                      std::to_string(o.n_blocks) + ", max_blocks " + std::to_string(o.max_blocks) + ", block_size " +
                      std::to_string(o.block_size));
  auto kv = HostArena::create(CpuBackend::kv_floats(config, o) * sizeof(float));
  if (!kv) return make_error("CPU backend: KV pool of " + std::to_string(o.max_blocks) + " blocks: " + kv.error().message);
  return std::unique_ptr<Backend>(
      new CpuBackend(std::move(config), std::move(weights), o, *isa, std::move(kv).value()));
}

}  // namespace flashtts
