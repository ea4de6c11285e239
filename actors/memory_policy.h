// How the memory arbiter divides the KV memory between the generator and the
// verifier. The baseline is a static split from the configuration; the
// roofline-guided online policy of DESIGN.md ("asymmetric multi-model memory
// allocation") implements the same interface.
//
// Thread contract: owned and called by the memory_arbiter actor only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "gpu/latency_model.h"
#include "runtime/base/status.h"

namespace flashtts {

// What one model takes and needs, as its actor reported it.
struct ModelFootprint {
  int64_t weight_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int32_t block_size = 16;
  int64_t max_position = 0;  // the model's positions; 0 = no limit
  int64_t workspace_bytes = 0;  // its backend's device workspaces (an automatic budget leaves them)
  int64_t block_bytes() const { return kv_bytes_per_token * block_size; }
  // The KV tokens `bytes` hold, in whole blocks.
  int64_t tokens(int64_t bytes) const { return bytes / block_bytes() * block_size; }
};

struct MemorySplit {
  int64_t generator_kv_bytes = 0;
  int64_t verifier_kv_bytes = 0;
};

// One model's work, as the arbiter knows it.
struct ModelDemand {
  double jobs = 0;         // jobs of one iteration
  // Jobs whose contexts the pool should keep through the iteration: the
  // model's own and the other model's, whose beams come to it next (the
  // verifier scores the beams still generating; the generator extends the
  // beams being scored). 0 = jobs.
  double held_jobs = 0;
  double held() const { return std::max(jobs, held_jobs); }
  double ctx_tokens = 0;   // a job's context, mean
  double new_tokens = 0;   // tokens a job computes (generated; or scored when its context is cached)
  double sharing = 1;      // context tokens per KV token held (>= 1)
  // Measured: the distinct KV tokens a job's context and its new tokens take
  // (shared blocks divided among the jobs sharing them), over the model's
  // last finished jobs, about one iteration's (held_jobs); 0 = not measured.
  double job_kv_tokens = 0;
  // The KV tokens the scheduler's admission counts for a job out at the
  // model (its policy's accounting, over the jobs out in the window): a pool
  // of C tokens runs at most C / admit_tokens jobs at once; 0 = not known.
  double admit_tokens = 0;
  // Measured: context tokens a job computed again (the pool had evicted
  // them), at a pool of `miss_pool_tokens`; 0 pool = not measured.
  double miss_tokens = 0;
  int64_t miss_pool_tokens = 0;
  int64_t min_tokens = 0;  // the largest job: the pool may not go below it
  // The smallest pool a shrink makes without preempting a running job
  // (EngineLoad::pinned_tokens, the latest report).
  int64_t pinned_tokens = 0;
  int32_t max_batch = 256;
  ModelCost cost;
  LatencyConstants latency;
  bool known() const { return jobs > 0 && new_tokens > 0 && latency.known(); }
};

// What a policy that moves memory while the models serve decides on.
struct MemoryState {
  int64_t kv_bytes = 0;  // the KV memory both pools share
  ModelFootprint generator, verifier;
  MemorySplit current;
  ModelDemand gen, ver;
  double since_move_s = 1e9;  // seconds since the last move
};

class MemorySplitPolicy {
 public:
  virtual ~MemorySplitPolicy() = default;
  virtual const char* name() const = 0;
  // Whether it moves memory while the models serve (rebalance()); the pools
  // then reserve room to grow.
  virtual bool moves() const { return false; }
  // Error (naming the numbers) when the budget cannot hold both models with
  // at least one KV block each.
  virtual Expected<MemorySplit> split(int64_t budget_bytes, const ModelFootprint& generator,
                                      const ModelFootprint& verifier) = 0;
  // A better split for the models' current work, or nothing (stay). The
  // static baseline never moves.
  virtual std::optional<MemorySplit> rebalance(const MemoryState&) { return std::nullopt; }
  // Why the last rebalance() decided as it did, for the log.
  virtual std::string last_reason() const { return {}; }
};

// KV memory = budget - both models' weights; the generator gets
// `generator_share` of it, the verifier the rest.
std::unique_ptr<MemorySplitPolicy> make_static_split(double generator_share);

// By the configuration's name ("static", "roofline"); roofline starts from
// the static split.
Expected<std::unique_ptr<MemorySplitPolicy>> make_memory_policy(const std::string& name, double generator_share);

}  // namespace flashtts
