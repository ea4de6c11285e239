// What the memory arbiter hears of the two models' work, turned into the
// demand a split policy decides on (ModelDemand): the jobs and their
// contexts from the scheduler (QueueLoad), the pools, the sharing, the
// tokens a job computes and the latency models from the generator and the
// verifier (EngineLoad). The jobs count is the peak over a window of a few
// iterations, so that the end of an iteration (a few stragglers) does not
// read as a smaller workload.
//
// Thread contract: owned by the memory_arbiter actor and used from its thread only.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "actors/memory_policy.h"
#include "messages/internal.h"

namespace flashtts {

class DemandWindow {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int32_t kMinMissJobs = 8;  // jobs at one pool size before its misses count
  static constexpr int32_t kMinWindowJobs = 8;  // finished jobs before the working set is measured

  explicit DemandWindow(double window_s = 3.0, int32_t max_batch = 256) : window_s_(window_s), max_batch_(max_batch) {}

  void set_cost(bool generator, const ModelCost& c) { side(generator).cost = c; }
  void add(const msg::QueueLoad& q, Clock::time_point now);
  void add(const msg::EngineLoad& e, Clock::time_point now);

  // The demand now (unknown until both the scheduler and the model reported).
  ModelDemand generator(Clock::time_point now) const { return demand(gen_, now); }
  ModelDemand verifier(Clock::time_point now) const { return demand(ver_, now); }

 private:
  struct Sample {
    Clock::time_point at;
    int32_t jobs;
    int64_t ctx_tokens;
    int32_t held;  // jobs whose contexts the pool should keep (ModelDemand::held_jobs)
    int32_t out_jobs;    // out at the model, and the KV tokens admission counts for them
    int64_t out_tokens;
  };
  struct Side {
    std::deque<Sample> queue;  // QueueLoad, within the window
    std::deque<std::pair<Clock::time_point, int64_t>> max_ctx;  // EngineLoad's largest context, within the window
    double tokens_per_job = 0;
    double miss_per_job = 0;
    int64_t pool_tokens = 0;
    double sharing = 1;
    int64_t pinned_tokens = 0;  // the latest EngineLoad's
    // EngineLoad's working-set windows (jobs, distinct KV tokens), as
    // reported within the window.
    std::deque<std::pair<Clock::time_point, std::vector<std::pair<int32_t, int32_t>>>> windows;
    LatencyConstants latency;
    ModelCost cost;
  };
  Side& side(bool generator) { return generator ? gen_ : ver_; }
  Clock::time_point since(Clock::time_point now) const;  // the window's start
  void trim(Side& s, Clock::time_point now);
  ModelDemand demand(const Side& s, Clock::time_point now) const;

  double window_s_;
  int32_t max_batch_;
  Side gen_, ver_;
};

}  // namespace flashtts
