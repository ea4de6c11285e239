// What an engine actor (the generator or the verifier) tells the memory
// arbiter while it serves under an elastic split: its latency model,
// calibrated on the device at the first grant and refined from every pass it
// runs, the tokens its jobs compute (new ones, and context computed again
// because the pool had evicted it: the misses at the pool's size), the KV
// working set of its last jobs, and its batch (msg::EngineLoad, at most
// every interval). Under the static split it does nothing.
//
// Thread contract: owned by one engine actor and used from its thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "actors/batch.h"
#include "actors/context_windows.h"
#include "actors/device_turns.h"
#include "gpu/engine.h"
#include "gpu/latency_model.h"
#include "messages/internal.h"

namespace flashtts {

class LoadMeter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LoadMeter(std::chrono::milliseconds interval = std::chrono::milliseconds(100)) : interval_(interval) {}

  // On the first grant: an elastic one (room reserved past its size) turns
  // the meter on and calibrates the latency model of `cost` on `engine`.
  // `cpu`: the engine runs on the host (a short probe).
  Status start(const msg::Grant& g, Engine& engine, const ModelCost& cost, bool cpu, const Logger& log);

  void pass(const PassShape& shape, double seconds) {
    if (on_) model_.add(shape, seconds);
  }
  // A job finished having computed `tokens` new ones (generated, or scored)
  // and `missed` context tokens again, because the pool (of `pool_tokens`
  // now) had evicted them. Both are means over the recent jobs (the older
  // half forgotten every kMemory jobs), not a moving average of the last
  // few: the misses of a group of siblings fall on the first to run, and a
  // report after a pass would otherwise tell the others'. A resize starts
  // the misses' mean again, so that they are told with the pool they
  // happened at, once the jobs its grant named have settled (on_grant). Its
  // context (`context`, then what it generated or scored when that is
  // apart: `rest`), in KV blocks of `block_size`, goes into the working-set
  // windows (actors/context_windows.h).
  static constexpr int64_t kMemory = 256;
  void job_done(int64_t tokens, int64_t missed, int64_t pool_tokens, std::span<const int32_t> context,
                std::span<const int32_t> rest, int32_t block_size) {
    tokens_.add((double)tokens);
    if (pool_tokens != miss_pool_) miss_pool_ = pool_tokens, misses_ = {}, settling_ = settle_next_;
    if (settling_ > 0) --settling_;
    else misses_.add((double)missed);
    if (on_) windows_.add(context, block_size, rest);
  }

  // A grant: after the resize it makes, the first `settle_jobs` jobs'
  // misses do not count (msg::Grant::settle_jobs).
  void on_grant(int32_t settle_jobs) { settle_next_ = settle_jobs; }

  // How long the engine actor may wait for a message before it steps
  // again: not at all while it has work; while a job waits for the pool to
  // grow, until the next report is due (the arbiter must keep hearing of
  // it); else until a message comes (-1).
  template <class Task>
  std::chrono::milliseconds idle_wait(const Batch<Task>& batch) const {
    if (batch.has_work()) return std::chrono::milliseconds(0);
    if (on_ && batch.waits_for_pool()) return interval_;
    return std::chrono::milliseconds(-1);
  }

  // The report, when one is due: every interval while jobs are queued or
  // running, and at once when the last has gone (the engine actor then
  // waits for a message and reports nothing more; without it the arbiter
  // would keep the last busy report's largest context as a floor).
  template <class Task>
  std::optional<msg::EngineLoad> report(const char* role, const Batch<Task>& batch) {
    if (!on_ || !batch.engine()) return std::nullopt;
    const auto now = Clock::now();
    const bool busy = !batch.running().empty() || !batch.queue().empty();
    if (now - last_ < interval_ && (busy || !last_busy_)) return std::nullopt;
    last_ = now;
    last_busy_ = busy;
    const Engine& e = *batch.engine();
    msg::EngineLoad l;
    l.role = role;
    l.running = (int32_t)batch.running().size();
    for (const Task& t : batch.running()) l.running_ctx_tokens += (int64_t)e.tokens(t.seq).size();
    const KvCacheStats st = e.kv_stats();
    l.kv_used_tokens = (int64_t)st.used_blocks * e.kv().block_size();
    l.max_ctx_tokens = batch.max_need();
    l.pinned_tokens = (int64_t)batch.pinned_blocks() * e.kv().block_size();
    l.tokens_per_job = tokens_.mean();
    l.miss_tokens_per_job = misses_.mean();
    l.miss_jobs = (int32_t)misses_.n;
    l.pool_tokens = miss_pool_;
    // Each window up to the first not yet full (the larger ones repeat it).
    const auto ws = windows_.windows();
    for (size_t i = 0; i < ws.size() && ws[i].jobs > 0; ++i) {
      l.window_jobs.push_back(ws[i].jobs);
      l.window_ctx_tokens.push_back((int32_t)ws[i].ctx_tokens);
      l.window_unique_tokens.push_back((int32_t)ws[i].unique_tokens);
      if (ws[i].jobs < ContextWindows::kSizes[i]) break;
    }
    const LatencyConstants c = model_.constants();
    l.overhead_s = c.overhead_s, l.s_per_byte = c.s_per_byte, l.s_per_flop = c.s_per_flop;
    return l;
  }

 private:
  std::chrono::milliseconds interval_;
  bool on_ = false;
  LatencyModel model_{ModelCost{}};
  struct Mean {
    double sum = 0;
    int64_t n = 0;
    void add(double v) {
      if (n == kMemory) sum /= 2, n /= 2;
      sum += v, ++n;
    }
    double mean() const { return n == 0 ? 0 : sum / (double)n; }
  };
  Mean tokens_, misses_;
  int64_t miss_pool_ = 0;
  int32_t settle_next_ = 0, settling_ = 0;  // jobs whose misses do not count, after the next resize / now
  ContextWindows windows_;
  Clock::time_point last_{};
  bool last_busy_ = false;  // the last report had jobs queued or running
};

// An engine actor's grant: the batch creates or resizes the engine, the
// meter starts on the first (and memory.offload's turns, after the meter's
// calibration, which needs the weights on the device), and the arbiter
// hears the pool's size.
template <class Task, class Post>
Status on_engine_grant(const msg::Grant& g, const char* role, const EngineActorOptions& o, const ModelConfig& config,
                       ModelWeights* weights, const ModelCost& cost, Batch<Task>& batch, LoadMeter& meter,
                       DeviceTurns& turns, const Logger& log, Post&& post) {
  meter.on_grant(g.settle_jobs);
  const bool first = !batch.engine();
  auto p = batch.on_grant(g, role, config, weights);
  if (!p) return p.error();
  if (!*p) return Status::success();
  FLASHTTS_TRY(meter.start(g, *batch.engine(), cost, !o.device || o.device->kind() == DeviceKind::Cpu, log));
  FLASHTTS_TRY(turns.on_grant(g, *batch.engine(), first));
  if (g.serial != 0) post(**p);
  return Status::success();
}

}  // namespace flashtts
