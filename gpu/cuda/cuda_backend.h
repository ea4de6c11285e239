// The CUDA backend: the Backend interface (gpu/backend.h) on one GPU, with
// bf16 (or f32) weights and KV and float32 accumulation. Its forward pass is
// the CPU backend's step for step (gpu/cpu/cpu_backend.cpp), so both match
// Hugging Face's Qwen2/Llama code.
//
// Memory: everything is taken at creation — one allocation for the weights,
// one for the paged KV pool (n_blocks blocks, the same block-table semantics
// as the CPU), one for the workspaces of max_tokens tokens — and nothing is
// allocated on the hot path. Larger batches run in pieces. Decode steps that
// recur are replayed from CUDA graphs (gpu/cuda/graph_cache.h).
//
// Thread contract: as every Backend: owned by one actor (generator or
// verifier) and called from its thread only; it owns its stream, so two
// backends (the two actors) overlap on the one device context.
#pragma once

#include <cstdint>
#include <memory>

#include "gpu/backend.h"
#include "gpu/cuda/cuda_stream.h"
#include "gpu/device_context.h"

namespace flashtts {

enum class CudaDtype { Bf16, F32 };

struct CudaBackendOptions {
  CudaDtype dtype = CudaDtype::Bf16;  // weights, KV and GEMM operands; accumulation is float32
  int32_t max_tokens = 2048;          // tokens per device pass (workspace size)
  int32_t logits_rows = 256;          // vocabulary rows per LM-head pass
  bool graphs = true;                 // capture recurring decode steps
};

// Bytes one token of KV takes (K and V, all layers) in `dtype`.
size_t kv_bytes_per_token_cuda(const ModelConfig& c, CudaDtype dtype);

// Device bytes a backend's workspaces take besides its weights and KV
// (activations of max_tokens tokens, LM-head rows, attention split states,
// cuBLAS's workspace) on a device of n_sms multiprocessors. Host arithmetic
// only: what the memory budget must leave for them before any backend exists.
size_t cuda_workspace_bytes(const ModelConfig& config, const BackendOptions& options,
                            const CudaBackendOptions& cuda_options, int32_t n_sms);

// Device bytes a backend's weights take: matrices in the backend's element
// type, norms, biases and the PRM's output layer in float32 (a float32
// checkpoint takes half its host size in bf16). Host arithmetic only.
size_t cuda_weight_bytes(const ModelConfig& config, const ModelWeights& weights,
                         const CudaBackendOptions& cuda_options);

// What a CUDA backend adds to the interface, for tests and benchmarks.
class CudaBackend : public Backend {
 public:
  virtual size_t weight_bytes() const = 0;     // device bytes of the weights
  virtual size_t workspace_bytes() const = 0;  // device bytes of KV + workspaces
  virtual int32_t graphs_captured() const = 0;
  virtual int64_t graph_replays() const = 0;
  virtual cudaStream_t stream() const = 0;
  // forward() that leaves its output on the device: *d_out = (n_rows, width)
  // f32 rows in batch order, valid until the next call. For the batches one
  // device pass takes (<= max_tokens tokens, <= logits_rows output rows);
  // others are an error. What GPU sampling (gpu/cuda/sampling.h) and the
  // benchmarks read, with no logits crossing to the host.
  virtual Status forward_on_device(std::span<const BatchEntry> batch, OutputKind kind, const float** d_out,
                                   int32_t* n_rows) = 0;
  // Blocks until the stream's work is done (forward() already does).
  virtual Status synchronize() = 0;
};

// REQUIRES: options.n_blocks > 0, options.block_size > 0. Errors: device
// memory exhausted (naming what and how much), a weight of the wrong size.
Expected<std::unique_ptr<CudaBackend>> make_cuda_backend(ModelConfig config, ModelWeights weights,
                                                         const BackendOptions& options,
                                                         const CudaBackendOptions& cuda_options, cuda::Stream stream);

// The same on a stream of its own from the process's device context.
Expected<std::unique_ptr<CudaBackend>> make_cuda_backend(ModelConfig config, ModelWeights weights,
                                                         const BackendOptions& options,
                                                         const CudaBackendOptions& cuda_options,
                                                         const DeviceContext& device);

}  // namespace flashtts
