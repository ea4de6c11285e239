// Token sampling on the GPU, over logits that stay on the device: greedy,
// temperature, top-k and top-p in the order and arithmetic of the host
// sampler (gpu/sampler.cpp): candidates sorted by logit (ties by id), the
// softmax in double, the nucleus cut, then the draw from the same
// (seed, sequence, position) stream (gpu/sample_hash.h). The same token comes
// out unless a draw lands within double rounding of a boundary.
//
// Memory for max_rows rows of a vocab-wide row is taken at creation.
//
// Thread contract: owned by one backend (or test), used from one thread.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "gpu/cuda/cuda_stream.h"
#include "gpu/sampler.h"

namespace flashtts::cuda {

class GpuSampler {
 public:
  static Expected<GpuSampler> create(int32_t max_rows, int32_t vocab, cudaStream_t stream);

  // tokens[r] for each of `rows` rows of d_logits (device, (rows, vocab) f32),
  // with params[r], seq_ids[r], positions[r]. REQUIRES: rows <= max_rows,
  // params validated as sample_token() requires. Blocks until done.
  Status sample(const float* d_logits, int32_t rows, std::span<const SamplingParams> params,
                std::span<const uint64_t> seq_ids, std::span<const uint64_t> positions, int32_t* tokens);

 private:
  int32_t max_rows_ = 0, vocab_ = 0;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer dev_;
  PinnedBuffer host_;
  size_t sort_temp_bytes_ = 0;
  // Carved from dev_ / host_ (see create()).
  float* keys_ = nullptr;       // (max_rows, vocab) sorted logits
  int32_t* ids_in_ = nullptr;   // (max_rows, vocab) i % vocab
  int32_t* ids_ = nullptr;      // (max_rows, vocab) ids in sorted order
  int32_t* offsets_ = nullptr;  // (max_rows + 1) row starts
  void* sort_temp_ = nullptr;
  void* rows_dev_ = nullptr;    // (max_rows) per-row parameters
  int32_t* tokens_dev_ = nullptr;
  void* rows_host_ = nullptr;
  int32_t* tokens_host_ = nullptr;
};

}  // namespace flashtts::cuda
