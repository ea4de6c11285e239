// The CUDA backend's host side: workspaces, the per-piece pass over the
// layers, the heads, and the transfers. Kernels are in kernels.cu and
// attention.cu; this file only enqueues them.
#include "gpu/cuda/cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

#include "gpu/cuda/attention.cuh"
#include "gpu/cuda/batch_plan.h"
#include "gpu/cuda/cuda_check.h"
#include "gpu/cuda/cuda_weights.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/graph_cache.h"
#include "gpu/cuda/kernels.cuh"
#include "gpu/cuda/kv_pages.h"

namespace flashtts {

size_t kv_bytes_per_token_cuda(const ModelConfig& c, CudaDtype dtype) {
  return 2ull * c.n_layers * c.n_kv_heads * c.head_dim * (dtype == CudaDtype::F32 ? 4 : 2);
}

namespace cuda {
namespace {

constexpr size_t kBlasWorkspace = 32ull << 20;  // cuBLAS's advice for Hopper; also used inside graphs

template <class S>
class Impl final : public CudaBackend {
 public:
  static Expected<std::unique_ptr<CudaBackend>> create(ModelConfig c, ModelWeights w, const BackendOptions& o,
                                                       const CudaBackendOptions& co, Stream stream);
  // The device bytes create() takes for its workspaces, KV excluded; no device call.
  static size_t workspace_size(const ModelConfig& c, const BackendOptions& o, const CudaBackendOptions& co,
                               int32_t n_sms);

  const ModelConfig& config() const override { return c_; }
  size_t kv_bytes_per_token() const override { return 2ull * c_.n_layers * kv_dim_ * sizeof(S); }
  size_t weight_bytes() const override { return w_.bytes; }
  size_t workspace_bytes() const override { return kv_.size() + kv_pages_.mapped_bytes() + work_.size(); }
  int32_t graphs_captured() const override { return graphs_.n_graphs(); }
  int64_t graph_replays() const override { return graphs_.replays(); }
  cudaStream_t stream() const override { return stream_.get(); }
  Status synchronize() override { return check(cudaStreamSynchronize(stream_.get()), "cudaStreamSynchronize"); }

  Status forward(std::span<const BatchEntry> batch, OutputKind kind, ForwardOutput* out) override;
  Status forward_on_device(std::span<const BatchEntry> batch, OutputKind kind, const float** d_out,
                           int32_t* n_rows) override;
  void copy_blocks(std::span<const BlockCopy> copies) override;
  Status resize_kv(int32_t n_blocks) override;
  Expected<double> set_weights_on_device(bool on) override;

 private:
  Impl(ModelConfig c, const BackendOptions& o, const CudaBackendOptions& co, Stream stream)
      : c_(std::move(c)), o_(o), co_(co), stream_(std::move(stream)) {}

  // Sets the workspaces' shapes (what carve() lays out) for n_sms multiprocessors.
  void plan(int32_t n_sms);
  // Lays the workspaces out over `base` (null: only sizes them).
  size_t carve(char* base);
  // The KV pool: fixed (kv_, n_blocks of each layer) or elastic (kv_pages_,
  // room for max_blocks of each layer, pages under the n_blocks in use).
  char* kv_base() const { return static_cast<char*>(kv_pages_.base() ? kv_pages_.base() : kv_.get()); }
  size_t kv_block_bytes() const { return 2ull * o_.block_size * kv_dim_ * sizeof(S); }
  size_t kv_layer_bytes() const {
    return kv_pages_.base() ? kv_pages_.layer_stride() : (size_t)o_.n_blocks * kv_block_bytes();
  }
  KvView<S> kv_layer(int64_t l) const {
    return {reinterpret_cast<S*>(kv_base() + (size_t)l * kv_layer_bytes()), o_.block_size, (int32_t)kv_dim_};
  }
  MetaView meta_view() const {
    return {meta_ + layout_.tokens(), meta_ + layout_.pos(), meta_ + layout_.entry(), meta_ + layout_.table_off(),
            meta_ + layout_.tables(), meta_ + layout_.out_idx()};
  }
  // Uploads the piece and enqueues its pass (graph or eager); *R = its output rows.
  Status compute_piece(const Piece& piece, std::span<const BatchEntry> batch, std::span<const int32_t> first_out,
                       OutputKind kind, int32_t* R);
  Status run_piece(const Piece& piece, std::span<const BatchEntry> batch, std::span<const int32_t> first_out,
                   OutputKind kind, ForwardOutput* out);
  // Everything from the embedding to the head's first pass: what a graph holds.
  Status enqueue_body(int32_t T, int32_t R, OutputKind kind);
  Status enqueue_layers(int32_t T);
  Status enqueue_logits(int32_t row0, int32_t rows);
  Status download(const float* src, int32_t rows, int32_t width, int32_t row0, ForwardOutput* out);

  ModelConfig c_;
  BackendOptions o_;
  CudaBackendOptions co_;
  Stream stream_;
  DeviceBuffer work_, kv_;
  KvPages kv_pages_;
  PinnedBuffer pinned_;
  Event meta_read_;  // the last upload from pinned_meta_ is done: the host may rewrite it
  Blas blas_;
  DeviceWeights<S> w_;
  // memory.offload: the weights' copy in page-locked host memory (made at
  // the first offload; the weights never change), and where they are.
  PinnedBuffer weights_host_;
  bool weights_on_ = true;
  const char* old_arena_ = nullptr;  // where they were, while off
  GraphCache graphs_;
  MetaLayout layout_;
  Status deferred_;  // an error of copy_blocks(), returned by the next forward()
  int64_t q_dim_ = 0, kv_dim_ = 0;
  int32_t n_sms_ = 1, lm_rows_ = 1;

  // Device workspaces, M = max_tokens tokens; Lr = lm_rows_.
  int32_t* meta_ = nullptr;  // MetaLayout::total() ints
  float* x_ = nullptr;       // (M, h) residual stream
  S* xn_ = nullptr;          // (M, h) normed, GEMM input
  float* qkv_ = nullptr;     // (M, q + 2kv)
  float* q_ = nullptr;       // (M, q) rotated queries
  S* att_ = nullptr;         // (M, q) attention output
  float* y_ = nullptr;       // (M, h) o_proj / down_proj output
  float* gu_ = nullptr;      // (M, 2f) [gate | up]
  S* act_ = nullptr;         // (M, f)
  float* hid_ = nullptr;     // (M, h) final-normed output rows
  S* hid_s_ = nullptr;       // (M, h) the same in S for the head GEMMs
  float* mid_ = nullptr;     // (M, h) classifier PRM hidden layer
  float* score_ = nullptr;   // (M)
  float* logits_ = nullptr;  // (Lr, V)
  float* attn_ws_ = nullptr; // attention split states
  size_t attn_ws_floats_ = 0;
  void* blas_ws_ = nullptr;
  int32_t* pinned_meta_ = nullptr;  // MetaLayout::total() ints
  float* pinned_out_ = nullptr;     // max(Lr * V, M * h) floats
  size_t pinned_out_floats_ = 0;
  std::vector<int32_t> out_token_, out_global_;
};

template <class S>
size_t Impl<S>::carve(char* base) {
  const size_t M = co_.max_tokens, h = c_.hidden_size, f = c_.intermediate_size, V = c_.vocab_size;
  Carver cv(base);
  meta_ = cv.take<int32_t>(layout_.total());
  x_ = cv.take<float>(M * h);
  xn_ = cv.take<S>(M * h);
  qkv_ = cv.take<float>(M * (q_dim_ + 2 * kv_dim_));
  q_ = cv.take<float>(M * q_dim_);
  att_ = cv.take<S>(M * q_dim_);
  y_ = cv.take<float>(M * h);
  gu_ = cv.take<float>(M * 2 * f);
  act_ = cv.take<S>(M * f);
  hid_ = cv.take<float>(M * h);
  hid_s_ = cv.take<S>(M * h);
  mid_ = cv.take<float>(c_.prm.kind == PrmKind::Classifier ? M * h : 0);
  score_ = cv.take<float>(M);
  logits_ = cv.take<float>((size_t)lm_rows_ * V);
  attn_ws_ = cv.take<float>(attn_ws_floats_);
  blas_ws_ = cv.take<char>(kBlasWorkspace);
  return cv.used();
}

template <class S>
void Impl<S>::plan(int32_t n_sms) {
  n_sms_ = n_sms;
  q_dim_ = (int64_t)c_.n_heads * c_.head_dim;
  kv_dim_ = (int64_t)c_.n_kv_heads * c_.head_dim;
  lm_rows_ = std::min(co_.max_tokens, co_.logits_rows);
  layout_.max_tokens = co_.max_tokens;
  layout_.max_table = std::max(2 * std::max(o_.n_blocks, o_.max_blocks), 64 * co_.max_tokens);
  attn_ws_floats_ = 0;
  for (int32_t T = 1; T <= std::min(co_.max_tokens, 2 * n_sms_); ++T) {
    AttnShape s{T, c_.n_heads, c_.n_kv_heads, c_.head_dim, 0, attention_splits(T, c_.n_heads, c_.n_kv_heads, n_sms_)};
    attn_ws_floats_ = std::max(attn_ws_floats_, attention_workspace_floats(s));
  }
}

template <class S>
size_t Impl<S>::workspace_size(const ModelConfig& c, const BackendOptions& o, const CudaBackendOptions& co,
                               int32_t n_sms) {
  Impl b(c, o, co, Stream());
  b.plan(n_sms);
  return b.carve(nullptr);
}

template <class S>
Expected<std::unique_ptr<CudaBackend>> Impl<S>::create(ModelConfig c, ModelWeights w, const BackendOptions& o,
                                                       const CudaBackendOptions& co, Stream stream) {
  if (o.n_blocks <= 0 || o.block_size <= 0 || co.max_tokens <= 0 || co.logits_rows <= 0)
    return make_error("CUDA backend: n_blocks, block_size, max_tokens and logits_rows must be positive");
  if (c.head_dim > 256 || c.head_dim % 2 != 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    return make_error("CUDA backend: unsupported attention shape (head_dim " + std::to_string(c.head_dim) +
                      ", heads " + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
                      "); needs an even head_dim <= 256 and n_heads a multiple of n_kv_heads");
  FLASHTTS_CUDA_TRY(cudaSetDevice(stream.device()), "cudaSetDevice");
  std::unique_ptr<Impl> b(new Impl(std::move(c), o, co, std::move(stream)));
  b->graphs_.set_enabled(co.graphs);
  int32_t n_sms = 1;
  FLASHTTS_CUDA_TRY(cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, b->stream_.device()),
                    "cudaDeviceGetAttribute");
  b->plan(n_sms);

  auto work = DeviceBuffer::create(b->carve(nullptr), "CUDA workspaces");
  if (!work) return work.error();
  b->work_ = std::move(work).value();
  // Before the first forward pass the whole workspace is free: it stages the
  // float32 weights for their conversion.
  auto weights = upload_weights<S>(b->c_, std::move(w), static_cast<float*>(b->work_.get()),
                                   b->work_.size() / sizeof(float), b->stream_.get());
  if (!weights) return weights.error();
  b->w_ = std::move(weights).value();
  b->carve(static_cast<char*>(b->work_.get()));

  if (o.max_blocks > o.n_blocks) {
    // Room reserved to grow into (an elastic split): pages mapped as the pool
    // grows and shrinks (kv_pages.h).
    auto kv = KvPages::create(b->stream_.device(), b->c_.n_layers, b->kv_block_bytes(), o.n_blocks, o.max_blocks,
                              b->stream_.get());
    if (!kv) return kv.error();
    b->kv_pages_ = std::move(kv).value();
  } else {
    const size_t kv_bytes = (size_t)b->c_.n_layers * o.n_blocks * b->kv_block_bytes();
    auto kv = DeviceBuffer::create(kv_bytes, "the KV cache");
    if (!kv) return kv.error();
    b->kv_ = std::move(kv).value();
    FLASHTTS_CUDA_TRY(cudaMemsetAsync(b->kv_.get(), 0, kv_bytes, b->stream_.get()), "KV clear");
  }

  b->pinned_out_floats_ = std::max((size_t)b->lm_rows_ * b->c_.vocab_size, (size_t)co.max_tokens * b->c_.hidden_size);
  auto pinned = PinnedBuffer::create(b->layout_.total() * sizeof(int32_t) + b->pinned_out_floats_ * sizeof(float),
                                     "transfers");
  if (!pinned) return pinned.error();
  b->pinned_ = std::move(pinned).value();
  b->pinned_meta_ = static_cast<int32_t*>(b->pinned_.get());
  b->pinned_out_ = reinterpret_cast<float*>(b->pinned_meta_ + b->layout_.total());

  auto ev = Event::create();
  if (!ev) return ev.error();
  b->meta_read_ = std::move(ev).value();
  auto blas = Blas::create(b->stream_.get(), b->blas_ws_, kBlasWorkspace);
  if (!blas) return blas.error();
  b->blas_ = std::move(blas).value();
  FLASHTTS_TRY(b->synchronize());
  return std::unique_ptr<CudaBackend>(std::move(b));
}

template <class S>
void Impl<S>::copy_blocks(std::span<const BlockCopy> copies) {
  const size_t chunk = layout_.total() / 2;
  for (size_t begin = 0; begin < copies.size() && deferred_.ok(); begin += chunk) {
    const size_t n = std::min(chunk, copies.size() - begin);
    deferred_ = check(cudaEventSynchronize(meta_read_.get()), "copy_blocks");
    if (!deferred_.ok()) break;
    for (size_t i = 0; i < n; ++i) {
      pinned_meta_[2 * i] = copies[begin + i].src;
      pinned_meta_[2 * i + 1] = copies[begin + i].dst;
    }
    deferred_ = check(cudaMemcpyAsync(meta_, pinned_meta_, 2 * n * sizeof(int32_t), cudaMemcpyHostToDevice,
                                      stream_.get()),
                      "copy_blocks upload");
    if (!deferred_.ok()) break;
    deferred_ = check(cudaEventRecord(meta_read_.get(), stream_.get()), "copy_blocks");
    if (!deferred_.ok()) break;
    copy_kv_blocks(kv_base(), meta_, (int32_t)n, c_.n_layers, kv_layer_bytes(), kv_block_bytes(), stream_.get());
    deferred_ = check_launch("copy_kv_blocks");
  }
}

template <class S>
Status Impl<S>::resize_kv(int32_t n_blocks) {
  if (!kv_pages_.base())
    return make_error("CUDA backend: this KV pool was made without room to grow (BackendOptions::max_blocks)");
  FLASHTTS_TRY(kv_pages_.resize(n_blocks, stream_.get()));
  o_.n_blocks = n_blocks;
  return Status::success();
}

template <class S>
Status Impl<S>::enqueue_layers(int32_t T) {
  const int32_t h = c_.hidden_size, f = c_.intermediate_size;
  const float eps = c_.rms_eps;
  cudaStream_t st = stream_.get();
  cublasHandle_t bl = blas_.get();
  const MetaView m = meta_view();
  AttnShape as{T, c_.n_heads, c_.n_kv_heads, c_.head_dim, c_.sliding_window,
               attention_splits(T, c_.n_heads, c_.n_kv_heads, n_sms_)};
  while (as.splits > 1 && attention_workspace_floats(as) > attn_ws_floats_) --as.splits;

  embed<S>(w_.tok_embd, m, T, h, x_, st);
  residual_rmsnorm<S>(x_, nullptr, nullptr, w_.layers[0].attn_norm, nullptr, T, h, eps, xn_, st);
  for (int64_t l = 0; l < c_.n_layers; ++l) {
    const DeviceLayer<S>& L = w_.layers[l];
    FLASHTTS_TRY(linear<S>(bl, xn_, L.wqkv, qkv_, T, h, q_dim_ + 2 * kv_dim_));
    qkv_rope_store<S>(qkv_, L.bqkv, w_.inv_freq, m, T, c_.n_heads, c_.n_kv_heads, c_.head_dim, kv_layer(l), q_, st);
    paged_attention<S>(q_, kv_layer(l), m, as, attn_ws_, att_, st);
    FLASHTTS_TRY(linear<S>(bl, att_, L.wo, y_, T, q_dim_, h));
    residual_rmsnorm<S>(x_, y_, L.bo, L.ffn_norm, nullptr, T, h, eps, xn_, st);
    FLASHTTS_TRY(linear<S>(bl, xn_, L.wgu, gu_, T, h, 2 * (int64_t)f));
    silu_mul<S>(gu_, L.bgu, T, f, act_, st);
    FLASHTTS_TRY(linear<S>(bl, act_, L.wdown, y_, T, f, h));
    if (l + 1 < c_.n_layers)
      residual_rmsnorm<S>(x_, y_, L.bdown, w_.layers[l + 1].attn_norm, nullptr, T, h, eps, xn_, st);
    else
      residual_add(x_, y_, L.bdown, T, h, st);
  }
  return check_launch("forward layers");
}

template <class S>
Status Impl<S>::enqueue_logits(int32_t row0, int32_t rows) {
  return linear<S>(blas_.get(), hid_s_ + (size_t)row0 * c_.hidden_size, w_.output, logits_, rows, c_.hidden_size,
                   c_.vocab_size);
}

template <class S>
Status Impl<S>::enqueue_body(int32_t T, int32_t R, OutputKind kind) {
  const int32_t h = c_.hidden_size;
  cudaStream_t st = stream_.get();
  FLASHTTS_TRY(enqueue_layers(T));
  if (R == 0) return Status::success();
  residual_rmsnorm<float>(x_, nullptr, nullptr, w_.final_norm, meta_ + layout_.out_idx(), R, h, c_.rms_eps, hid_, st);
  if (kind == OutputKind::Logits) {
    convert<S>(hid_, hid_s_, (size_t)R * h, st);
    FLASHTTS_TRY(enqueue_logits(0, std::min(R, lm_rows_)));
  } else if (kind == OutputKind::Score) {
    switch (c_.prm.kind) {
      case PrmKind::Classifier:
        convert<S>(hid_, hid_s_, (size_t)R * h, st);
        FLASHTTS_TRY(linear<S>(blas_.get(), hid_s_, w_.prm_w1, mid_, R, h, h));
        bias_act(mid_, w_.prm_b1, R, h, true, st);
        prm_classifier(mid_, w_.prm_w2, w_.prm_b2, R, h, score_, st);
        break;
      case PrmKind::ValueHead:
        prm_value(hid_, w_.prm_w2, w_.prm_b2, R, h, score_, st);
        break;
      case PrmKind::LmLogits:
        prm_lm_logits<S>(hid_, w_.output, c_.prm.good_token_id, c_.prm.bad_token_id, R, h, score_, st);
        break;
      case PrmKind::None:
        break;  // rejected by check_batch()
    }
  }
  return check_launch("forward head");
}

// Copies `rows` rows of `width` from the device to their places in *out.
template <class S>
Status Impl<S>::download(const float* src, int32_t rows, int32_t width, int32_t row0, ForwardOutput* out) {
  const size_t n = (size_t)rows * width;
  FLASHTTS_CUDA_TRY(cudaMemcpyAsync(pinned_out_, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_.get()),
                    "output download");
  FLASHTTS_TRY(synchronize());
  for (int32_t r = 0; r < rows; ++r)
    std::memcpy(out->data.data() + (size_t)out_global_[row0 + r] * width, pinned_out_ + (size_t)r * width,
                width * sizeof(float));
  return Status::success();
}

template <class S>
Status Impl<S>::compute_piece(const Piece& piece, std::span<const BatchEntry> batch,
                              std::span<const int32_t> first_out, OutputKind kind, int32_t* R_out) {
  // forward_on_device() returns before the stream ran: its upload may still read pinned_meta_.
  FLASHTTS_CUDA_TRY(cudaEventSynchronize(meta_read_.get()), "batch upload");
  const size_t n_meta = fill_meta(piece, batch, first_out, o_.block_size, layout_, pinned_meta_, &out_token_,
                                  &out_global_);
  const int32_t T = piece.n_tokens, R = (int32_t)out_token_.size();
  *R_out = R;
  if (R > co_.max_tokens) return make_error("forward: more output rows than tokens in one pass (duplicate out_rows?)");
  FLASHTTS_CUDA_TRY(cudaMemcpyAsync(meta_, pinned_meta_, n_meta * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    stream_.get()),
                    "batch upload");
  FLASHTTS_CUDA_TRY(cudaEventRecord(meta_read_.get(), stream_.get()), "batch upload");
  const bool decode =
      std::all_of(piece.parts.begin(), piece.parts.end(), [](const PiecePart& p) { return p.count == 1; });
  auto body = [&] { return enqueue_body(T, R, kind); };
  if (!decode) return body();
  const int64_t key = ((int64_t)T * (co_.max_tokens + 1) + R) * 4 + (int64_t)kind;
  return graphs_.run(key, stream_.get(), body);
}

template <class S>
Status Impl<S>::run_piece(const Piece& piece, std::span<const BatchEntry> batch, std::span<const int32_t> first_out,
                          OutputKind kind, ForwardOutput* out) {
  int32_t R = 0;
  FLASHTTS_TRY(compute_piece(piece, batch, first_out, kind, &R));
  switch (kind) {
    case OutputKind::Logits:
      for (int32_t r0 = 0; r0 < R; r0 += lm_rows_) {
        const int32_t n = std::min(lm_rows_, R - r0);
        if (r0 > 0) FLASHTTS_TRY(enqueue_logits(r0, n));
        FLASHTTS_TRY(download(logits_, n, c_.vocab_size, r0, out));
      }
      break;
    case OutputKind::Hidden:
      FLASHTTS_TRY(download(hid_, R, c_.hidden_size, 0, out));
      break;
    case OutputKind::Score:
      FLASHTTS_TRY(download(score_, R, 1, 0, out));
      break;
    case OutputKind::Tokens:  // samples_tokens() is false: the engine asks for logits
      return make_error("CUDA backend: forward() does not sample; ask for logits");
  }
  return synchronize();
}

template <class S>
Expected<double> Impl<S>::set_weights_on_device(bool on) {
  if (on == weights_on_) return 0.0;
  FLASHTTS_CUDA_TRY(cudaSetDevice(stream_.device()), "cudaSetDevice");
  const auto t0 = std::chrono::steady_clock::now();
  cudaStream_t st = stream_.get();
  if (!on) {
    if (!weights_host_.get()) {
      auto h = PinnedBuffer::create(w_.bytes, "the weights' host copy");
      if (!h) return h.error();
      weights_host_ = std::move(h).value();
      FLASHTTS_CUDA_TRY(cudaMemcpyAsync(weights_host_.get(), w_.arena.get(), w_.bytes, cudaMemcpyDeviceToHost, st),
                        "cudaMemcpyAsync (weights to host)");
    }
    FLASHTTS_TRY(synchronize());  // no pass still reads them
    old_arena_ = static_cast<const char*>(w_.arena.get());
    w_.arena = DeviceBuffer();  // back to the driver, for the other model
    weights_on_ = false;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  auto a = DeviceBuffer::create(w_.bytes, "model weights");
  if (!a) return a.error();
  FLASHTTS_CUDA_TRY(cudaMemcpyAsync(a->get(), weights_host_.get(), w_.bytes, cudaMemcpyHostToDevice, st),
                    "cudaMemcpyAsync (weights to the device)");
  FLASHTTS_TRY(synchronize());
  char* base = static_cast<char*>(a->get());
  if (base != old_arena_) {
    // Elsewhere: the tensors' pointers move, and the graphs that hold the
    // old ones go.
    rebase_weights(&w_, old_arena_, base);
    graphs_.clear();
  }
  w_.arena = std::move(a).value();
  weights_on_ = true;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class S>
Status Impl<S>::forward(std::span<const BatchEntry> batch, OutputKind kind, ForwardOutput* out) {
  if (!deferred_.ok()) return std::exchange(deferred_, Status::success());
  if (!weights_on_) return make_error("CUDA backend: the weights are in host memory (offloaded); load them first");
  FLASHTTS_TRY(check_batch(c_, w_.output != w_.tok_embd, o_.n_blocks, o_.block_size,
                                 batch, kind));
  FLASHTTS_CUDA_TRY(cudaSetDevice(stream_.device()), "cudaSetDevice");
  std::vector<int32_t> first_out = first_out_rows(batch);
  int32_t rows = 0;
  for (const BatchEntry& b : batch) rows += (int32_t)b.out_rows.size();
  out->n_rows = rows;
  out->width = kind == OutputKind::Logits ? c_.vocab_size : kind == OutputKind::Hidden ? c_.hidden_size : 1;
  out->data.resize((size_t)rows * out->width);
  auto pieces = plan_pieces(batch, o_.block_size, co_.max_tokens, layout_.max_table);
  if (!pieces) return pieces.error();
  for (const Piece& p : *pieces) FLASHTTS_TRY(run_piece(p, batch, first_out, kind, out));
  return Status::success();
}

template <class S>
Status Impl<S>::forward_on_device(std::span<const BatchEntry> batch, OutputKind kind, const float** d_out,
                                  int32_t* n_rows) {
  if (!deferred_.ok()) return std::exchange(deferred_, Status::success());
  if (!weights_on_) return make_error("CUDA backend: the weights are in host memory (offloaded); load them first");
  FLASHTTS_TRY(check_batch(c_, w_.output != w_.tok_embd, o_.n_blocks, o_.block_size, batch, kind));
  FLASHTTS_CUDA_TRY(cudaSetDevice(stream_.device()), "cudaSetDevice");
  auto pieces = plan_pieces(batch, o_.block_size, co_.max_tokens, layout_.max_table);
  if (!pieces) return pieces.error();
  if (pieces->size() != 1) return make_error("forward_on_device: the batch needs more than one device pass");
  std::vector<int32_t> first_out = first_out_rows(batch);
  int32_t rows = 0;
  for (const BatchEntry& b : batch) rows += (int32_t)b.out_rows.size();
  if (kind == OutputKind::Logits && rows > lm_rows_)
    return make_error("forward_on_device: " + std::to_string(rows) + " logits rows, more than one pass holds (" +
                      std::to_string(lm_rows_) + ")");
  int32_t R = 0;
  FLASHTTS_TRY(compute_piece(pieces->front(), batch, first_out, kind, &R));
  *n_rows = R;
  *d_out = kind == OutputKind::Logits ? logits_ : kind == OutputKind::Hidden ? hid_ : score_;
  return Status::success();
}

}  // namespace
}  // namespace cuda

size_t cuda_workspace_bytes(const ModelConfig& config, const BackendOptions& options,
                            const CudaBackendOptions& cuda_options, int32_t n_sms) {
  if (cuda_options.dtype == CudaDtype::F32) return cuda::Impl<float>::workspace_size(config, options, cuda_options, n_sms);
  return cuda::Impl<__nv_bfloat16>::workspace_size(config, options, cuda_options, n_sms);
}

size_t cuda_weight_bytes(const ModelConfig& config, const ModelWeights& weights, const CudaBackendOptions& cuda_options) {
  if (cuda_options.dtype == CudaDtype::F32) return cuda::device_weight_bytes<float>(config, weights);
  return cuda::device_weight_bytes<__nv_bfloat16>(config, weights);
}

Expected<std::unique_ptr<CudaBackend>> make_cuda_backend(ModelConfig config, ModelWeights weights,
                                                         const BackendOptions& options,
                                                         const CudaBackendOptions& cuda_options, cuda::Stream stream) {
  if (cuda_options.dtype == CudaDtype::F32)
    return cuda::Impl<float>::create(std::move(config), std::move(weights), options, cuda_options, std::move(stream));
  return cuda::Impl<__nv_bfloat16>::create(std::move(config), std::move(weights), options, cuda_options,
                                           std::move(stream));
}

Expected<std::unique_ptr<CudaBackend>> make_cuda_backend(ModelConfig config, ModelWeights weights,
                                                         const BackendOptions& options,
                                                         const CudaBackendOptions& cuda_options,
                                                         const DeviceContext& device) {
  auto stream = cuda::Stream::create(device);
  if (!stream) return stream.error();
  return make_cuda_backend(std::move(config), std::move(weights), options, cuda_options, std::move(stream).value());
}

}  // namespace flashtts
