// The engine's device interface: one forward pass over a ragged batch that
// attends over paged KV memory. A CPU and (later) a CUDA implementation sit
// behind it so the actors never know which device runs them.
//
// Thread contract: a Backend is owned by one actor (generator or verifier)
// and called from that actor's thread only. It may use worker threads inside
// a call; nothing it owns is touched between calls by anyone else.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "gpu/kv_cache.h"
#include "gpu/model_config.h"
#include "gpu/sampler.h"
#include "gpu/weights.h"
#include "runtime/base/status.h"

namespace flashtts {

// One sequence's slice of a ragged batch: a prefill chunk (many tokens) or a
// decode step (one token).
struct BatchEntry {
  std::span<const int32_t> tokens;       // new tokens; their KV is written
  int32_t n_past = 0;                    // tokens of this sequence already in KV
  std::span<const int32_t> block_table;  // REQUIRES: covers n_past + tokens.size()
  std::span<const int32_t> out_rows;     // rows of `tokens` (0-based) to return output for
  // OutputKind::Tokens: how to sample, and the stream's sequence id (the
  // host sampler's key is (seed, sample_id, position of the new token)).
  SamplingParams sampling{};
  uint64_t sample_id = 0;
};

enum class OutputKind {
  Logits,  // width = vocab_size: next-token logits (policy)
  Hidden,  // width = hidden_size: final-normed hidden state (what PRM heads read)
  Score,   // width = 1: the PRM's step probability (model must be a PRM)
  Tokens,  // width = 1: the next token id sampled per BatchEntry::sampling (exact in a float)
};

// Row-major (n_rows, width); rows in batch order, then out_rows order.
struct ForwardOutput {
  int32_t n_rows = 0;
  int32_t width = 0;
  std::vector<float> data;
  // Seconds the pass held the device, where the backend knows it apart from
  // waiting for the device (a simulated card, whose timeline two engines
  // share); -1 otherwise, and the caller's clock is the measure.
  double device_s = -1;
  std::span<const float> row(int32_t r) const {
    return {data.data() + static_cast<size_t>(r) * width, static_cast<size_t>(width)};
  }
};

struct BackendOptions {
  int32_t n_blocks = 0;     // KV blocks to hold (from the KV byte budget)
  int32_t max_blocks = 0;   // KV blocks reserved for resize_kv() to grow into; 0 = n_blocks
  int32_t block_size = 16;  // tokens per block
  int32_t n_threads = 0;    // 0 = all cores
  // A simulated device draws its sampled tokens uniformly from these ids
  // (gpu/sim/sim_tokens.h); null or empty: from the whole vocabulary.
  std::shared_ptr<const std::vector<int32_t>> sample_ids;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Runs the model over `batch`, writing every new token's K/V into its block
  // and returning the requested rows. Errors are input errors (token id out of
  // range, a block table too short); the KV of a failed call is undefined for
  // the rows it named.
  virtual Status forward(std::span<const BatchEntry> batch, OutputKind kind, ForwardOutput* out) = 0;

  // Whether forward() takes OutputKind::Tokens itself (sampling where the
  // logits are); otherwise the engine asks for Logits and samples on the host.
  virtual bool samples_tokens() const { return false; }

  // Copies whole KV blocks (all layers), e.g. the partial block of a fork.
  virtual void copy_blocks(std::span<const BlockCopy> copies) = 0;

  // Makes the KV pool n_blocks blocks (1 to max_blocks) without moving a
  // block; forward() then accepts block ids below n_blocks only. A shrink may
  // give the memory of the blocks above back, so their contents are lost.
  // Error when n_blocks is out of range or the backend cannot resize.
  // REQUIRES: when shrinking, no live sequence holds a block >= n_blocks
  // (the engine checks).
  virtual Status resize_kv(int32_t /*n_blocks*/) {
    return make_error("this backend's KV pool cannot change size");
  }

  // Moves the weights off the device to host memory (false) or back (true),
  // so that another model can use their memory meanwhile (memory.offload);
  // the KV pool stays. forward() fails while they are off. Returns the
  // seconds the move took on the device. Error when the backend cannot (the
  // CPU: its weights are already in host memory; a simulated card that
  // shares the host's memory).
  virtual Expected<double> set_weights_on_device(bool /*on*/) {
    return make_error("this backend cannot move its weights off the device");
  }

  virtual const ModelConfig& config() const = 0;
  // Bytes of KV one token takes (K and V, all layers) in this backend.
  virtual size_t kv_bytes_per_token() const = 0;
};

// Bytes one token of KV takes with float32 storage.
size_t kv_bytes_per_token_f32(const ModelConfig& c);

// Fails when FLASHTTS_CPU_ISA names a path this CPU lacks (gpu/cpu/matmul.h),
// when the block counts are not 0 < n_blocks <= max_blocks, or when the KV
// reservation cannot be mapped.
Expected<std::unique_ptr<Backend>> make_cpu_backend(ModelConfig config, ModelWeights weights,
                                                    const BackendOptions& options);

}  // namespace flashtts
