// The KV working set of an engine's recent jobs: over the last k finished
// jobs (k = 8, 16, ..., 512), how many distinct KV tokens their contexts
// take, full blocks with the same content (the same tokens after the same
// prefix, as the prefix cache keys them) counted once, a partial last block
// each time. The memory arbiter reads the window nearest one iteration's
// jobs as the pool size that keeps the next iteration's contexts
// (actors/roofline_split.h), where the sharing among the few tasks running
// at once (one or two scoring jobs at the verifier) says nothing of it.
//
// Thread contract: owned by one engine actor (through its LoadMeter) and
// used from its thread only.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

namespace flashtts {

class ContextWindows {
 public:
  static constexpr std::array<int32_t, 7> kSizes = {8, 16, 32, 64, 128, 256, 512};

  // A finished job whose context (its prompt and what it generated or
  // scored) is `tokens` then `more`, in KV blocks of `block_size` tokens.
  // REQUIRES: block_size > 0, the same for every job.
  void add(std::span<const int32_t> tokens, int32_t block_size, std::span<const int32_t> more = {});

  struct Window {
    int32_t jobs = 0;           // min(k, jobs seen)
    int64_t ctx_tokens = 0;     // their contexts, summed
    int64_t unique_tokens = 0;  // distinct KV tokens they take
  };
  // One per size in kSizes, each over min(k, jobs seen) jobs.
  std::array<Window, kSizes.size()> windows() const;

 private:
  struct Job {
    std::vector<uint64_t> blocks;  // the full blocks' keys (chained hashes)
    int32_t tail = 0;              // tokens after the last full block
    int32_t tokens = 0;
  };
  struct Counts {
    std::unordered_map<uint64_t, int32_t> refs;  // block key -> jobs in the window holding it
    int64_t tail_tokens = 0, ctx_tokens = 0;
    int32_t jobs = 0;
  };
  static void enter(Counts& c, const Job& j);
  static void leave(Counts& c, const Job& j);

  std::deque<Job> jobs_;  // newest last, at most the largest size
  std::array<Counts, kSizes.size()> counts_;
  int32_t block_size_ = 0;
};

}  // namespace flashtts
