#include "actors/memory_policy.h"

#include <cstdio>

#include "actors/roofline_split.h"

namespace flashtts {

namespace {

std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1 << 20));
  return buf;
}

class StaticSplit final : public MemorySplitPolicy {
 public:
  explicit StaticSplit(double share) : share_(share) {}
  const char* name() const override { return "static"; }

  Expected<MemorySplit> split(int64_t budget, const ModelFootprint& g, const ModelFootprint& v) override {
    int64_t kv = budget - g.weight_bytes - v.weight_bytes;
    MemorySplit s;
    s.generator_kv_bytes = int64_t(double(kv) * share_);
    s.verifier_kv_bytes = kv - s.generator_kv_bytes;
    if (kv <= 0 || s.generator_kv_bytes < g.block_bytes() || s.verifier_kv_bytes < v.block_bytes())
      return make_error("memory budget of " + mib(budget) + " cannot hold the generator (" + mib(g.weight_bytes) +
                        " of weights) and the verifier (" + mib(v.weight_bytes) +
                        " of weights) with KV cache for both; raise memory.budget_mb");
    return s;
  }

 private:
  double share_;
};

}  // namespace

std::unique_ptr<MemorySplitPolicy> make_static_split(double generator_share) {
  return std::make_unique<StaticSplit>(generator_share);
}

Expected<std::unique_ptr<MemorySplitPolicy>> make_memory_policy(const std::string& name, double generator_share) {
  if (name == "static") return make_static_split(generator_share);
  if (name == "roofline") return std::unique_ptr<MemorySplitPolicy>(new RooflineSplit(generator_share, RooflineOptions{}));
  return make_error("memory split policy '" + name + "' is not one of: static, roofline");
}

}  // namespace flashtts
