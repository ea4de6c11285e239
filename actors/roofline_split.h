// The `roofline` memory split (DESIGN.md, "asymmetric multi-model memory
// allocation"): predicts the time of one search iteration (the generation of
// the beams' steps, then their scoring) for each split of the KV memory, from
// each model's demand and its roofline latency model, and moves memory to
// the split it predicts fastest when that beats the current one by more than
// the hysteresis and the cost of moving.
//
// The prediction, for a model holding C KV tokens: a job takes the KV
// tokens the model measured its last iteration of jobs to take, shared
// blocks counted once (ModelDemand::job_kv_tokens; until measured, ctx /
// sharing plus what it writes), and the scheduler admits a job for the KV
// tokens its policy counts (ModelDemand::admit_tokens: under fifo a job's
// whole context and what it may write, several times its share), so r =
// min(jobs, max_batch, C / max(footprint, admitted)) jobs run at once, and
// the jobs take jobs / r rounds of r: continuous batching admits a job as
// soon as one ends, so a pool one job short of holding them all costs a
// little, not a second round of the longest step. Generation: a round
// decodes tokens_per_job passes of r rows. Scoring: a round is one prefill
// pass of r jobs' new tokens. What the pool cannot keep of the jobs'
// KV between iterations is computed again each iteration (a prefill): of a
// working set U larger than the pool C, U - (1 - a) C, where a is fitted to
// the misses the model measured at its pool's current size (an LRU cache
// under a cyclic reuse pattern loses more than U - C; see lost_tokens).
//
// A move waits (up to max_preempt_wait_s) for a moment when the shrinking
// model's running jobs hold no block above its new size: a preempted job
// decodes its step again, and its iteration waits for it. Between the
// iterations of a beam search that moment comes soon. Not while the other
// model's next job cannot run. A model with no jobs predicts no time, and
// is decided on only while the other is blocked (whose blocked job may be
// what leaves it idle).
//
// One move goes at most max_step of the memory, then the split decides again
// from what the models measure there: it waits (up to max_wait_s) for their
// misses at the new sizes, counted once the jobs the grants named have
// settled (msg::Grant::settle_jobs). A move back the way the last one came
// needs twice the gain, four times after one such move within
// reversal_memory_s, eight after two, and so on.
//
// Demand is the peak over a window (a few iterations), so that a workload
// that alternates faster than that reads as the mix it is, not as two.
//
// Thread contract: owned and called by the memory_arbiter actor only.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "actors/memory_policy.h"

namespace flashtts {

// Seconds the model needs for one iteration's jobs with `kv_tokens` of KV;
// +inf when a job cannot run (the pool holds less than the largest), 0
// without jobs.
double predict_generation(const ModelDemand& d, int64_t kv_tokens);
double predict_scoring(const ModelDemand& d, int64_t kv_tokens);

// The best split of `kv_bytes` of KV for the models' demand in `st` (its
// kv_bytes and current split ignored): the generator's bytes, on a grid of
// `step`, and the iteration that split predicts (+inf when no split lets
// every job run). What memory.offload's choice between taking turns and
// staying compares (actors/memory_arbiter.cpp).
struct BestSplit {
  int64_t generator_kv_bytes = 0;
  double seconds = 0;
};
BestSplit predict_best_split(const MemoryState& st, int64_t kv_bytes, double step = 0.05);

struct RooflineOptions {
  double hysteresis = 0.10;  // move only when the best split is this much faster
  double step = 0.05;        // grid of splits, as fractions of the KV memory
  double horizon = 4;        // iterations a move must pay back its cost in
  double min_dwell_s = 1.0;  // between moves
  double max_step = 0.2;     // of the KV memory, in one move
  double reversal_memory_s = 30;  // how long a reversal raises the gain the next needs
  double max_wait_s = 15;  // after a move, for the misses measured at the new sizes
  double max_preempt_wait_s = 10;  // for the shrinking model's running jobs to fit its new size
};

class RooflineSplit final : public MemorySplitPolicy {
 public:
  RooflineSplit(double initial_share, RooflineOptions o) : initial_share_(initial_share), o_(o) {}
  const char* name() const override { return "roofline"; }
  bool moves() const override { return true; }
  Expected<MemorySplit> split(int64_t budget_bytes, const ModelFootprint& generator,
                              const ModelFootprint& verifier) override;
  std::optional<MemorySplit> rebalance(const MemoryState& s) override;
  std::string last_reason() const override { return reason_; }

 private:
  double initial_share_;
  RooflineOptions o_;
  std::string reason_;
  int last_dir_ = 0;  // of the last move: +1 toward the generator, -1 toward the verifier
  // Seconds from each recent reversal (a move back the way the one before
  // came) to the last move.
  std::vector<double> reversal_ages_;
  // A move deferred until the shrinking model's running jobs fit: since
  // when (in since_move_s), while the calls in a row defer it.
  bool deferring_ = false;
  double deferred_from_s_ = 0;
};

}  // namespace flashtts
