// The engine: one model's weights, KV cache and backend, driven by sequence
// ids. Sequences hold tokens; tokens whose KV is not yet computed are
// "pending", and run() computes pending tokens for many sequences in one
// ragged forward pass. This is the API the generator and verifier actors use;
// the CLI's generate/score use it the same way.
//
// Thread contract: an Engine is owned by one actor and used from its thread
// only (the backend may use worker threads inside a call).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "gpu/backend.h"
#include "gpu/device_context.h"
#include "gpu/kv_cache.h"
#include "gpu/model_config.h"
#include "gpu/pass_shape.h"
#include "runtime/base/status.h"

namespace flashtts {

struct EngineOptions {
  size_t kv_bytes = 256ull << 20;  // KV budget of this model
  size_t kv_bytes_max = 0;         // the most KV resize_kv() may grow to, reserved by the backend; 0 = kv_bytes
  int32_t block_size = 16;
  int32_t n_threads = 0;           // 0 = all cores
  // The process's device context: a CUDA one puts the engine on the GPU
  // (bf16 weights and KV); null or a CPU one keeps it on the CPU.
  std::shared_ptr<const DeviceContext> device;
  // A simulated device samples from these ids (BackendOptions::sample_ids).
  std::shared_ptr<const std::vector<int32_t>> sample_ids;
};

// Which rows of a sequence's pending chunk produce output.
enum class RowSelect {
  None,      // compute KV only
  Last,      // the last pending token (next-token logits)
  StepTags,  // every pending token equal to the PRM's step-tag id
  Explicit,  // the pending tokens at RunItem::positions
};

struct RunItem {
  int64_t seq = 0;
  RowSelect rows = RowSelect::Last;
  int32_t max_tokens = 0;  // cap on pending tokens computed in this call (chunked prefill); 0 = all
  std::vector<int32_t> positions;  // Explicit: absolute token positions; those not computed now are ignored
  SamplingParams sampling{};       // OutputKind::Tokens: how this item's next token is drawn
  uint64_t sample_id = 0;          // OutputKind::Tokens: the stream's sequence id (a beam)
};

// Output rows of one run(): for each item (in order) the positions that gave
// a row of `out`, so callers can map rows back to sequences and tokens.
struct RunResult {
  ForwardOutput out;
  std::vector<int32_t> item_first_row;  // (n_items) index of the item's first row in out
  std::vector<int32_t> item_n_rows;     // (n_items)
  std::vector<int32_t> row_position;    // (n_rows) absolute token position of each row
  std::vector<int64_t> starved;         // sequences skipped: no KV blocks left (preempt, retry)
  PassShape shape;                      // what the pass computed (starved items left out)
};

// Bytes one token of KV takes on `device` (null = the CPU): float32 on the
// CPU, bf16 on CUDA and on a simulated card.
size_t kv_bytes_per_token_on(const ModelConfig& c, const DeviceContext* device);

// Bytes the weights take on `device`: the host copy on the CPU, the backend's
// device layout on CUDA (bf16 matrices, whatever dtype the folder stores),
// the bf16 size a simulated card would hold (it holds none).
int64_t weight_bytes_on(const ModelConfig& c, const ModelWeights& w, const DeviceContext* device);

// Device bytes the backend's workspaces will take on `device` besides the
// weights and the KV pool (activations, LM-head rows, attention states): what
// an automatic memory budget must leave free. 0 on the CPU (host memory) and
// on a simulated card (it allocates nothing).
int64_t workspace_bytes_on(const ModelConfig& c, const DeviceContext* device);

class Engine {
 public:
  static Expected<std::unique_ptr<Engine>> create(ModelConfig config, ModelWeights weights,
                                                  const EngineOptions& options);

  const ModelConfig& config() const { return backend_->config(); }

  // A new sequence holding `tokens` (all pending, except a prefix whose KV the
  // prefix cache already holds, when reuse_prefix). Returns how many tokens
  // came from the cache. Error when the KV pool cannot hold the sequence.
  Expected<int32_t> add_sequence(int64_t seq, std::span<const int32_t> tokens, bool reuse_prefix = true);

  // Appends tokens to a sequence (pending until the next run()).
  void append(int64_t seq, std::span<const int32_t> tokens);

  // child = a copy of parent sharing its computed full blocks. Error when no
  // block is left for the partial-block copy.
  Status fork(int64_t parent, int64_t child);

  // Keeps only the first n tokens (drops speculative or rejected tokens).
  void truncate(int64_t seq, int32_t n);

  // Frees the sequence; its full blocks stay in the prefix cache, or with
  // `drop` leave it where no other sequence holds them (KvCache::free_sequence).
  void release(int64_t seq, bool drop = false);
  bool has(int64_t seq) const { return seqs_.count(seq) != 0; }
  std::span<const int32_t> tokens(int64_t seq) const;
  int32_t n_computed(int64_t seq) const;
  int32_t n_pending(int64_t seq) const;

  // Computes pending tokens of every item in one forward pass. Items whose KV
  // cannot be reserved are skipped and listed in result->starved. With
  // OutputKind::Tokens each row is the token sampled after it (by the
  // backend where it samples, else here from the logits: the same draw).
  Status run(std::span<const RunItem> items, OutputKind kind, RunResult* result);

  // The registered blocks of the sequence from the one holding token `from`
  // on, and discard() of such blocks once their sequence is gone
  // (KvCache::registered_from, KvCache::discard).
  std::vector<CachedBlock> registered_from(int64_t seq, int32_t from) const { return kv_.registered_from(seq, from); }
  int32_t discard(std::span<const CachedBlock> blocks) { return kv_.discard(blocks); }

  // Tokens of `tokens` whose KV add_sequence would find in the prefix cache.
  int32_t cached_prefix(std::span<const int32_t> tokens) const { return kv_.cached_prefix(tokens); }

  KvCacheStats kv_stats() const { return kv_.stats(); }
  const KvCache& kv() const { return kv_; }
  void reset_kv_needed_peak() { kv_.reset_needed_peak(); }  // KvCacheStats::needed_peak_blocks

  // Makes the KV pool kv_bytes / (bytes per token * block size) blocks, live
  // sequences staying where they are: grown blocks are free; a shrink evicts
  // the cached blocks above the cut and gives their memory back where the
  // backend can. Error, with nothing changed, when that is no block, more
  // than max_kv_blocks(), a shrink below a block some sequence holds
  // (release or preempt those first), or a backend that cannot resize (CUDA,
  // for now).
  Status resize_kv(size_t kv_bytes);
  // Moves the weights to host memory (false) or back to the device (true);
  // the KV pool and every sequence stay. run() fails while they are off.
  // Returns the device seconds the move took (Backend::set_weights_on_device).
  Expected<double> set_weights_on_device(bool on) {
    auto s = backend_->set_weights_on_device(on);
    if (s) weights_on_device_ = on;
    return s;
  }
  bool weights_on_device() const { return weights_on_device_; }
  // The most blocks resize_kv() can reach (EngineOptions::kv_bytes_max).
  int32_t max_kv_blocks() const { return max_kv_blocks_; }
  size_t kv_block_bytes() const { return kv_block_bytes_; }  // what one block takes
  // Whether the sequence holds a KV block id >= first, which pins a shrink to first.
  // REQUIRES: has(seq)
  bool holds_block_from(int64_t seq, int32_t first) const { return kv_.holds_block_from(seq, first); }

 private:
  Engine(std::unique_ptr<Backend> backend, KvCache kv, size_t kv_block_bytes, int32_t max_kv_blocks)
      : backend_(std::move(backend)), kv_(std::move(kv)), kv_block_bytes_(kv_block_bytes),
        max_kv_blocks_(max_kv_blocks) {}

  struct Sequence {
    std::vector<int32_t> tokens;  // all tokens; the first kv_.n_tokens(seq) have KV
  };
  Sequence& get(int64_t seq);
  const Sequence& get(int64_t seq) const;

  std::unique_ptr<Backend> backend_;
  KvCache kv_;
  size_t kv_block_bytes_;  // KV of one block in the backend's storage
  int32_t max_kv_blocks_;
  bool weights_on_device_ = true;
  std::unordered_map<int64_t, Sequence> seqs_;
};

}  // namespace flashtts
