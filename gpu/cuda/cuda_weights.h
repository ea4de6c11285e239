// One model's weights on the GPU, carved from one allocation: matrices in the
// storage type S (bf16 or f32), copied as they are when the folder stores S and
// converted on upload otherwise; norms, biases and the small PRM output layer
// in float32.
// q/k/v are fused into one (q+2kv, h) matrix and gate/up into one (2f, h),
// so a layer makes four GEMMs instead of seven.
//
// Thread contract: built by the owning backend at creation, then read by its
// kernels only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "gpu/cuda/cuda_stream.h"
#include "gpu/model_config.h"
#include "gpu/weights.h"

namespace flashtts::cuda {

template <class S>
struct DeviceLayer {
  const float* attn_norm;  // (h)
  const S* wqkv;           // (nh*hd + 2*nkv*hd, h)
  const float* bqkv;       // (nh*hd + 2*nkv*hd) or null
  const S* wo;             // (h, nh*hd)
  const float* bo;         // (h) or null
  const float* ffn_norm;   // (h)
  const S* wgu;            // (2f, h)  [gate; up]
  const float* bgu;        // (2f) or null
  const S* wdown;          // (h, f)
  const float* bdown;      // (h) or null
};

template <class S>
struct DeviceWeights {
  DeviceBuffer arena;
  const S* tok_embd = nullptr;    // (V, h)
  std::vector<DeviceLayer<S>> layers;
  const float* final_norm = nullptr;  // (h)
  const S* output = nullptr;      // (V, h): lm_head, or tok_embd when tied; null for head-only PRMs
  const S* prm_w1 = nullptr;      // (h, h) Classifier
  const float* prm_b1 = nullptr;  // (h)
  const float* prm_w2 = nullptr;  // (n_out, h)
  const float* prm_b2 = nullptr;  // (n_out) or null
  const float* inv_freq = nullptr;  // (hd/2) RoPE frequencies, computed on the host as the CPU does
  size_t bytes = 0;               // device bytes the arena holds
};

// Device bytes upload_weights<S> takes for `w`: the same layout walked
// without a device (host arithmetic; `w` is only read).
template <class S>
size_t device_weight_bytes(const ModelConfig& c, const ModelWeights& w);

// Uploads `w` (consumed: each host tensor is freed once on the device).
// `staging` is device scratch of at least 1 MiB used for the conversion.
template <class S>
Expected<DeviceWeights<S>> upload_weights(const ModelConfig& c, ModelWeights w, float* staging, size_t staging_floats,
                                          cudaStream_t st);

// Points every tensor of `w` at the same offset in an arena at `to` instead
// of `from` (the weights came back from host memory to another address).
template <class S>
void rebase_weights(DeviceWeights<S>* w, const char* from, char* to);

}  // namespace flashtts::cuda
