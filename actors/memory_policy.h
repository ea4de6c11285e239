// How the memory arbiter divides the KV memory between the generator and the
// verifier. The baseline is a static split from the configuration; the
// roofline-guided online policy of DESIGN.md ("asymmetric multi-model memory
// allocation") implements the same interface.
//
// Thread contract: owned and called by the memory_arbiter actor only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace flashtts {

// What one model takes and needs, as its actor reported it.
struct ModelFootprint {
  int64_t weight_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int32_t block_size = 16;
};

struct MemorySplit {
  int64_t generator_kv_bytes = 0;
  int64_t verifier_kv_bytes = 0;
};

class MemorySplitPolicy {
 public:
  virtual ~MemorySplitPolicy() = default;
  virtual const char* name() const = 0;
  // Error (naming the numbers) when the budget cannot hold both models with
  // at least one KV block each.
  virtual Expected<MemorySplit> split(int64_t budget_bytes, const ModelFootprint& generator,
                                      const ModelFootprint& verifier) = 0;
};

// KV memory = budget - both models' weights; the generator gets
// `generator_share` of it, the verifier the rest.
std::unique_ptr<MemorySplitPolicy> make_static_split(double generator_share);

// By the configuration's name ("static").
Expected<std::unique_ptr<MemorySplitPolicy>> make_memory_policy(const std::string& name, double generator_share);

}  // namespace flashtts
