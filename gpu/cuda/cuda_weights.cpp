#include "gpu/cuda/cuda_weights.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "gpu/cpu/kernels.h"
#include "gpu/cuda/cuda_check.h"
#include "gpu/cuda/kernels.cuh"

namespace flashtts::cuda {

namespace {

// Walks the layout twice: once without a base to size the arena, once to
// carve it and copy every tensor into place.
template <class S>
class Uploader {
 public:
  Uploader(char* base, float* staging, size_t staging_floats, cudaStream_t st)
      : carve_(base), staging_(staging), staging_floats_(staging_floats), st_(st) {}

  // A float32 tensor, or null when `v` is empty and !required.
  const float* f32(std::vector<float>* v, size_t expect, bool required = true) {
    if (v->empty() && !required) return nullptr;
    float* d = carve_.take<float>(expect);
    if (d && status_.ok()) {
      if (v->size() != expect)
        fail(v->size(), expect);
      else
        status_ = check(cudaMemcpyAsync(d, v->data(), expect * sizeof(float), cudaMemcpyHostToDevice, st_), "upload");
    }
    release(v);
    return d;
  }

  // Several host matrices back to back as one tensor of S.
  const S* concat(std::initializer_list<std::pair<WeightMatrix*, size_t>> parts) {
    size_t total = 0;
    for (auto& p : parts) total += p.second;
    S* d = carve_.take<S>(total);
    size_t off = 0;
    for (auto& [v, n] : parts) {
      if (d && status_.ok()) {
        if (v->size() != n) fail(v->size(), n);
        else put(*v, d + off, n);
      }
      release(v);
      off += n;
    }
    return d;
  }

  // A float32 copy of a (small) matrix: the PRM's output layer.
  const float* f32(WeightMatrix* m, size_t expect) {
    std::vector<float> v = m->to_f32();
    const float* d = f32(&v, expect);  // synchronised before v goes (release)
    release(m);
    return d;
  }

  // Float32 biases fused like concat(); null when every part is empty.
  const float* bias(std::initializer_list<std::pair<std::vector<float>*, size_t>> parts) {
    bool any = false;
    size_t total = 0;
    for (auto& p : parts) any |= !p.first->empty(), total += p.second;
    if (!any) return nullptr;
    float* d = carve_.take<float>(total);
    size_t off = 0;
    for (auto& [v, n] : parts) {
      if (d && status_.ok()) {
        if (v->empty())
          status_ = check(cudaMemsetAsync(d + off, 0, n * sizeof(float), st_), "upload");
        else if (v->size() != n)
          fail(v->size(), n);
        else
          status_ = check(cudaMemcpyAsync(d + off, v->data(), n * sizeof(float), cudaMemcpyHostToDevice, st_),
                          "upload");
      }
      release(v);
      off += n;
    }
    return d;
  }

  size_t used() const { return carve_.used(); }
  const Status& status() const { return status_; }

 private:
  // A matrix in its stored dtype to S: bits copied when they already are S
  // (f32 -> f32, bf16 -> bf16), else through float32 and the staging buffer.
  void put(const WeightMatrix& m, S* dst, size_t n) {
    const bool same = std::is_same_v<S, float> ? m.dtype == DType::F32 : m.dtype == DType::BF16;
    if (same) {
      status_ = check(cudaMemcpyAsync(dst, m.data(), n * sizeof(S), cudaMemcpyHostToDevice, st_), "upload");
      return;
    }
    std::vector<float> host(std::min(staging_floats_, n));
    for (size_t off = 0; off < n && status_.ok(); off += staging_floats_) {
      const size_t k = std::min(staging_floats_, n - off);
      for (size_t i = 0; i < k; ++i) host[i] = m.at(off + i);
      status_ = check(cudaMemcpy(staging_, host.data(), k * sizeof(float), cudaMemcpyHostToDevice), "upload");
      if (status_.ok()) convert<S>(staging_, dst + off, k, st_);
      if (status_.ok()) status_ = check(cudaStreamSynchronize(st_), "upload");  // host is reused next round
    }
  }
  void fail(size_t got, size_t expect) {
    status_ = make_error("CUDA upload: a weight tensor has " + std::to_string(got) + " values, expected " +
                         std::to_string(expect));
  }
  // Host copies go as soon as they are on the device (a 7B model is 28 GB
  // of float32); only after the copy completed, hence the sync.
  void release(std::vector<float>* v) {
    if (carve_.used() && staging_ && !v->empty()) {
      cudaStreamSynchronize(st_);
      std::vector<float>().swap(*v);
    }
  }
  void release(WeightMatrix* m) {
    if (carve_.used() && staging_ && !m->empty()) {
      cudaStreamSynchronize(st_);
      m->clear();
    }
  }

  Carver carve_;
  float* staging_;
  size_t staging_floats_;
  cudaStream_t st_;
  Status status_;
};

template <class S>
DeviceWeights<S> lay_out(Uploader<S>& u, const ModelConfig& c, ModelWeights& w) {
  const size_t h = c.hidden_size, f = c.intermediate_size, hd = c.head_dim, q = c.n_heads * hd,
               kv = c.n_kv_heads * hd, V = c.vocab_size;
  DeviceWeights<S> d;
  d.tok_embd = u.concat({{&w.tok_embd, V * h}});
  for (LayerWeights& L : w.layers) {
    DeviceLayer<S> dl;
    dl.attn_norm = u.f32(&L.attn_norm, h);
    dl.wqkv = u.concat({{&L.wq, q * h}, {&L.wk, kv * h}, {&L.wv, kv * h}});
    dl.bqkv = u.bias({{&L.bq, q}, {&L.bk, kv}, {&L.bv, kv}});
    dl.wo = u.concat({{&L.wo, h * q}});
    dl.bo = u.f32(&L.bo, h, false);
    dl.ffn_norm = u.f32(&L.ffn_norm, h);
    dl.wgu = u.concat({{&L.w_gate, f * h}, {&L.w_up, f * h}});
    dl.bgu = u.bias({{&L.b_gate, f}, {&L.b_up, f}});
    dl.wdown = u.concat({{&L.w_down, h * f}});
    dl.bdown = u.f32(&L.b_down, h, false);
    d.layers.push_back(dl);
  }
  d.final_norm = u.f32(&w.final_norm, h);
  d.output = w.lm_head.empty() ? d.tok_embd : u.concat({{&w.lm_head, V * h}});
  if (!w.prm.w1.empty()) {
    d.prm_w1 = u.concat({{&w.prm.w1, h * h}});
    d.prm_b1 = u.f32(&w.prm.b1, h, false);
  }
  if (!w.prm.w2.empty()) {
    const size_t n_out = w.prm.w2.size() / h;
    d.prm_w2 = u.f32(&w.prm.w2, n_out * h);  // converted to float32 (a few rows)
    d.prm_b2 = u.f32(&w.prm.b2, n_out, false);
  }
  // RoPE frequencies from the CPU backend's own function, so both agree bit for bit.
  std::vector<float> inv_freq(hd / 2);
  cpu::rope_inv_freq((int64_t)hd, c.rope_theta, inv_freq.data());
  d.inv_freq = u.f32(&inv_freq, hd / 2);
  return d;
}

}  // namespace

template <class S>
size_t device_weight_bytes(const ModelConfig& c, const ModelWeights& w) {
  // Without a base, staging or stream the walk only sizes: it neither copies
  // nor frees a tensor, so the const_cast writes nothing.
  Uploader<S> sizing(nullptr, nullptr, 0, nullptr);
  (void)lay_out(sizing, c, const_cast<ModelWeights&>(w));
  return sizing.used();
}

template <class S>
Expected<DeviceWeights<S>> upload_weights(const ModelConfig& c, ModelWeights w, float* staging, size_t staging_floats,
                                          cudaStream_t st) {
  if ((int32_t)w.layers.size() != c.n_layers)
    return make_error("CUDA upload: " + std::to_string(w.layers.size()) + " layers of weights for a config of " +
                      std::to_string(c.n_layers));
  Uploader<S> sizing(nullptr, nullptr, 0, st);
  (void)lay_out(sizing, c, w);
  auto arena = DeviceBuffer::create(sizing.used(), "model weights");
  if (!arena) return arena.error();
  Uploader<S> u(static_cast<char*>(arena->get()), staging, staging_floats, st);
  DeviceWeights<S> d = lay_out(u, c, w);
  FLASHTTS_TRY(u.status());
  FLASHTTS_CUDA_TRY(cudaStreamSynchronize(st), "weight upload");
  d.bytes = sizing.used();
  d.arena = std::move(arena).value();
  return d;
}

template <class S>
void rebase_weights(DeviceWeights<S>* w, const char* from, char* to) {
  auto move = [&](auto*& p) {
    using T = std::remove_reference_t<decltype(*p)>;
    if (p) p = reinterpret_cast<T*>(to + (reinterpret_cast<const char*>(p) - from));
  };
  move(w->tok_embd), move(w->final_norm), move(w->output), move(w->prm_w1), move(w->prm_b1);
  move(w->prm_w2), move(w->prm_b2), move(w->inv_freq);
  for (DeviceLayer<S>& L : w->layers) {
    move(L.attn_norm), move(L.wqkv), move(L.bqkv), move(L.wo), move(L.bo);
    move(L.ffn_norm), move(L.wgu), move(L.bgu), move(L.wdown), move(L.bdown);
  }
}

template void rebase_weights<float>(DeviceWeights<float>*, const char*, char*);
template void rebase_weights<__nv_bfloat16>(DeviceWeights<__nv_bfloat16>*, const char*, char*);
template size_t device_weight_bytes<float>(const ModelConfig&, const ModelWeights&);
template size_t device_weight_bytes<__nv_bfloat16>(const ModelConfig&, const ModelWeights&);
template Expected<DeviceWeights<float>> upload_weights<float>(const ModelConfig&, ModelWeights, float*, size_t,
                                                              cudaStream_t);
template Expected<DeviceWeights<__nv_bfloat16>> upload_weights<__nv_bfloat16>(const ModelConfig&, ModelWeights, float*,
                                                                              size_t, cudaStream_t);

}  // namespace flashtts::cuda
