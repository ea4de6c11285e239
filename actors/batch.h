// Continuous batching over one engine, the piece the generator and the
// verifier share: the queue and the running set, admission against the KV
// pool, preemption by recompute, the engine a KV grant creates, and the
// routing of an actor's messages to its handlers.
//
// Queue order: foreground tasks in arrival order, then background tasks in
// arrival order; a preempted task goes back to the front of its class.
// Admission takes tasks strictly in that order and stops at the first that
// cannot be admitted, so a background task never passes a foreground one.
// When the queue's head is a foreground task that found no room (no KV
// blocks, or max_batch running), running background tasks are stopped, the
// newest first, until it is admitted; when decode runs out of KV blocks a
// background task is stopped before any foreground task is preempted. The
// generator's speculative jobs are its background tasks; the verifier has
// none, and for it this is the plain FIFO batching it always did.
//
// A task that runs out of blocks while others finish nothing is preempted
// by recompute: its sequence is released and it is queued again with what it
// has, to be prefilled as context. After a preemption no task is admitted
// until one leaves (or none runs): the one just preempted would be admitted
// again at once and starve the running ones of the blocks they need.
//
// Live beams: a task whose job has keep_kv leaves its sequence in the
// batch's KeptKv (actors/kept_kv.h) when it ends; one whose job names a kept
// sequence in from_job starts as a fork of it. When blocks run short, kept
// sequences are freed after background tasks are stopped and before a
// foreground task is preempted or refused.
//
// Dead branches first (EngineActorOptions::drop_dead_kv): a task that ends
// without keeping its sequence leaves a record of its own blocks in the
// batch's JobTails (actors/job_tails.h); drop_kv frees them.
//
// Task: derives from BatchSlot, has `job.rid`, `job.job_id`, `job.keep_kv`,
// `job.from_job` and `bool background() const`.
//
// Thread contract: a Batch (and a Routes) is owned by one engine actor, the
// generator or the verifier, and used from that actor's thread only.
#pragma once

#include <algorithm>
#include <cassert>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "actors/engine_actor.h"
#include "actors/job_tails.h"
#include "actors/kept_kv.h"
#include "gpu/engine.h"
#include "gpu/kv_cache.h"
#include "messages/envelope.h"
#include "messages/error_codes.h"
#include "runtime/base/clock.h"
#include "runtime/base/logging.h"
#include "runtime/base/mailbox.h"
#include "runtime/base/status.h"

namespace flashtts {

// What a Batch keeps of every task.
struct BatchSlot {
  int64_t seq = -1;           // engine sequence while running
  int32_t n_preempted = 0;
  bool admitted_once = false;
  Clock::time_point admitted;  // the first admission
  bool held = false;          // an admission round left it queued
  bool left = false;          // finished (release() was called); dropped by drop_left()
  bool from_counted = false;  // counted as a user of its from_job's kept sequence, not started yet
};

// Why an admission round stopped.
enum class Blocked {
  kNone,          // the queue is empty
  kHold,          // no admission (background: none) until a task leaves, after a preemption (a stop)
  kSharedPrefix,  // the head waits for a running task to compute blocks it shares
  kRoom,          // no KV blocks, or max_batch tasks running
  kBound,         // the head is a background task the actor does not let run now
};

template <class Task>
class Batch {
 public:
  // How the owning actor takes part in admission.
  struct Hooks {
    // The tokens a task's sequence holds when it is admitted.
    std::function<std::vector<int32_t>(const Task&)> context;
    // KV tokens a task needs past its context (the generator's next token).
    int32_t extra_tokens = 0;
    // Optional. Before admission: true when the task is complete without
    // running; it must have been finished (release()).
    std::function<bool(Task&)> settled;
    // The sentence for a context of n tokens over the pool's capacity.
    std::function<std::string(size_t n)> over_capacity;
    // Finishes a task that can never fit (an error, code too_large); must release() it.
    std::function<void(Task&, std::string why)> reject;
    // Optional. After the task's sequence was added (t.seq is set, and
    // admitted_once not yet, so a first admission can be told): n_cached of
    // ctx's tokens came from the prefix cache.
    std::function<void(Task&, std::span<const int32_t> ctx, int32_t n_cached)> admitted;
    // Optional. Whether one more background task may run now.
    std::function<bool()> background_fits;
    // A background task is admitted only when at most this many of its
    // context tokens must be computed (the prefix cache lost the rest):
    // recomputing evicted context is work real tasks would wait for. -1: any.
    int32_t background_max_uncached = -1;
    // Background tasks take free KV blocks only, never the prefix cache's:
    // one is admitted only while the free blocks hold its whole context and
    // one more, and spare_cache() stops them before a pass would evict.
    bool background_free_blocks_only = false;
    // Ends a running background task now (the generator's "stopped"); must
    // release() it. Needed only where tasks can be background.
    std::function<void(Task&)> stop;
    // Where a task's own tokens begin in its sequence (past what its beam
    // shares with others): JobTails records its blocks from there on.
    std::function<int32_t(const Task&)> own_from;
  };

  Batch(const EngineActorOptions& o, Logger log, Hooks hooks)
      : o_(o), log_(std::move(log)), hooks_(std::move(hooks)), kept_(o.by_priority) {}

  // What a simulated device samples from, for the engine the first grant
  // creates (EngineOptions::sample_ids).
  void set_sample_ids(std::shared_ptr<const std::vector<int32_t>> ids) { sample_ids_ = std::move(ids); }

  // Creates the engine on the first grant for `role` (accept_grant); a
  // later one resizes its pool (resize()). Returns what the memory arbiter
  // is answered: the pool's size (nullopt for a grant to another role).
  Expected<std::optional<msg::PoolSize>> on_grant(const msg::Grant& g, const char* role, const ModelConfig& config,
                                                  ModelWeights* weights) {
    if (g.role != role) {
      log_->warn("ignored a grant for the {}", g.role);
      return std::optional<msg::PoolSize>();
    }
    msg::PoolSize p;
    p.role = role, p.serial = g.serial;
    if (!engine_) {
      FLASHTTS_TRY(accept_grant(g, role, config, weights, o_, log_, &engine_, sample_ids_));
      max_capacity_ = engine_->max_kv_blocks() * o_.block_size;
    } else if (g.kv_bytes != kv_bytes_) {
      if (auto r = resize(g.kv_bytes)) {
        p.preempted = *r;
        ++resizes_;
        log_->info("KV pool resized to {:.1f} MiB ({} blocks); {} tasks preempted", double(g.kv_bytes) / (1 << 20),
                   engine_->kv().n_blocks(), *r);
      } else {
        p.error = r.error().message;
      }
    }
    if (p.error.empty()) kv_bytes_ = g.kv_bytes;
    capacity_ = engine_->kv().n_blocks() * engine_->kv().block_size();
    p.kv_bytes = kv_bytes_, p.kv_tokens = capacity_;
    return std::optional<msg::PoolSize>(p);
  }

  Engine* engine() const { return engine_.get(); }
  int64_t kv_bytes() const { return kv_bytes_; }
  int32_t capacity() const { return capacity_; }          // KV tokens of the whole pool
  int32_t max_capacity() const { return max_capacity_; }  // what it may grow to
  int64_t resizes() const { return resizes_; }
  // The most KV tokens a queued or running task needs (context and what it
  // adds): the pool may not shrink below it.
  int64_t max_need() const {
    int64_t n = waiting_need_;
    for (const Task& t : running_) n = std::max<int64_t>(n, (int64_t)engine_->tokens(t.seq).size() + hooks_.extra_tokens);
    return n;
  }
  // Whether a step would do anything: tasks run, or queued ones may be
  // admitted. Not when the last admit() left them all queued with nothing
  // running: only a message (a job, a grant, a release) changes that, and
  // the actor then steps again.
  // Nor while the weights are off the device (memory.offload: the other
  // model's turn).
  bool has_work() const {
    return engine_ && engine_->weights_on_device() && (!running_.empty() || (!queue_.empty() && !stalled_));
  }
  // Whether a real (foreground) task is queued or running: what the model
  // asks the device for when the two take turns.
  bool has_real_work() const {
    auto real = [](const Task& t) { return !t.background(); };
    return std::any_of(queue_.begin(), queue_.end(), real) || std::any_of(running_.begin(), running_.end(), real);
  }
  // The fewest KV blocks resize() can keep without preempting a real task:
  // past the highest block one holds (background tasks and kept sequences
  // it frees first, without a preemption).
  int32_t pinned_blocks() const {
    int32_t top = 0;
    for (const Task& t : running_)
      if (!t.background() && t.seq >= 0)
        for (int32_t b : engine_->kv().block_table(t.seq)) top = std::max(top, b + 1);
    return top;
  }
  // The queue's head waits for the pool to grow (nothing running frees blocks).
  bool waits_for_pool() const { return stalled_ && waiting_need_ > 0; }

  std::deque<Task>& queue() { return queue_; }
  const std::deque<Task>& queue() const { return queue_; }
  std::vector<Task>& running() { return running_; }  // admission order
  const std::vector<Task>& running() const { return running_; }
  int64_t preemptions() const { return preemptions_; }
  const KeptKv& kept() const { return kept_; }
  const JobTails& tails() const { return tails_; }

  // Queues a new task behind the others of its class (by_request: behind
  // the others of its class from requests as old as its own or older).
  void push(Task t) {
    if (t.job.from_job != 0 && engine_) t.from_counted = kept_.add_user(t.job.rid, t.job.from_job);
    if (t.background()) return queue_.push_back(std::move(t));
    auto at = first_background();
    if (o_.by_request)
      at = std::find_if(queue_.begin(), at, [&](const Task& q) { return q.job.rid > t.job.rid; });
    queue_.insert(at, std::move(t));
  }

  // Restores the queue order after tasks changed class (stable).
  void reorder() {
    std::stable_partition(queue_.begin(), queue_.end(), [](const Task& t) { return !t.background(); });
  }

  // Ends a task's part in the batch: releases its sequence (full blocks stay
  // in the prefix cache), or with `keep` and the job's keep_kv keeps it for
  // the jobs that continue it, unless the batch stopped the task to make
  // room; marks the task for drop_left(). A running task that leaves lifts
  // the holds on admission.
  void release(Task& t, bool keep = false) {
    if (t.from_counted) {
      kept_.drop_user(*engine_, t.job.rid, t.job.from_job);
      t.from_counted = false;
    }
    if (t.seq >= 0) {
      if (keep && t.job.keep_kv && !making_room_) {
        kept_.keep(t.job.rid, t.job.job_id, t.seq, t.job.priority);
      } else {
        if (o_.drop_dead_kv && hooks_.own_from)
          tails_.record(*engine_, t.job.rid, t.job.job_id, t.seq, hooks_.own_from(t));
        engine_->release(t.seq);
      }
      t.seq = -1;
      hold_admission_ = hold_background_ = false;
    }
    t.left = true;
  }

  // Drops the tasks that left from the queue and the running set.
  void drop_left() {
    std::erase_if(queue_, [](const Task& t) { return t.left; });
    std::erase_if(running_, [](const Task& t) { return t.left; });
  }

  // Drops every task of the request, queued or running, and every sequence
  // kept for it, with no message.
  void forget(uint64_t rid) {
    for (Task& t : running_)
      if (t.job.rid == rid) release(t);
    std::erase_if(queue_, [&](const Task& t) { return t.job.rid == rid; });
    drop_left();
    if (engine_) kept_.forget(*engine_, rid);
    tails_.forget(rid);
  }

  // drop_kv: these jobs' beams end; what only they wrote leaves the cache.
  void drop_dead(uint64_t rid, std::span<const uint64_t> jobs) {
    if (engine_) tails_.drop(*engine_, rid, jobs);
  }

  // release_kv: the kept sequences of these jobs are no longer needed.
  void release_kept(uint64_t rid, std::span<const uint64_t> jobs) {
    if (engine_) kept_.release(*engine_, rid, jobs);
  }

  // Admission rounds; then, while the head is a foreground task that found
  // no room and background tasks run, stops the newest of them and admits
  // again. Returns why the last round stopped. When it stopped for want of
  // room, a hold or the bound (not for a shared prefix, which a pass or two
  // computes), every task still queued is marked held: it will not run soon.
  Blocked admit() {
    Blocked b = admit_round();
    while (b == Blocked::kRoom && !queue_.empty() && !queue_.front().background() &&
           (stop_newest_background() || (short_of_blocks_ && kept_.free_one(*engine_))))
      b = admit_round();
    if (b == Blocked::kRoom || b == Blocked::kHold || b == Blocked::kBound)
      for (Task& t : queue_) t.held = true;
    stalled_ = running_.empty() && !queue_.empty();
    return b;
  }

  // Decode ran out of KV blocks and no task finished to free some: stops the
  // newest background task (and admits no background task until one
  // leaves), or when none runs frees a kept sequence, or else preempts the
  // task admitted last (by_priority: the lowest-priority one, the latest of those).
  void make_room() {
    if (stop_newest_background()) {
      hold_background_ = true;
      return;
    }
    if (kept_.free_one(*engine_)) return;
    preempt();
  }

  // Before a pass: while fewer KV blocks are free than the running
  // background tasks may take in it (one each), stops the newest of them, so
  // that no pass evicts the prefix cache for background work.
  void spare_cache() {
    if (!hooks_.background_free_blocks_only) return;
    for (;;) {
      const int64_t background =
          std::count_if(running_.begin(), running_.end(), [](const Task& t) { return t.background(); });
      if (background == 0 || engine_->kv_stats().free_blocks >= background) return;
      stop_newest_background();
      hold_background_ = true;
    }
  }

  // The most KV blocks held: note() after each forward pass, before tasks finish.
  void note_peak() { kv_blocks_peak_ = std::max(kv_blocks_peak_, engine_->kv_stats().used_blocks); }
  int32_t kv_blocks_peak() const { return kv_blocks_peak_; }
  void reset_peak(int32_t used) {
    kv_blocks_peak_ = used;
    if (engine_) engine_->reset_kv_needed_peak();
  }

 private:
  typename std::deque<Task>::iterator first_background() {
    return std::find_if(queue_.begin(), queue_.end(), [](const Task& t) { return t.background(); });
  }

  Blocked admit_round() {
    short_of_blocks_ = false;
    waiting_need_ = 0;
    if (hold_admission_) {
      if (!running_.empty()) return Blocked::kHold;
      hold_admission_ = false;
    }
    if (running_.empty()) hold_background_ = false;
    while (!queue_.empty()) {
      if ((int32_t)running_.size() >= o_.max_batch) return Blocked::kRoom;
      Task& t = queue_.front();
      if (hooks_.settled && hooks_.settled(t)) {  // finished without running
        queue_.pop_front();
        continue;
      }
      std::vector<int32_t> ctx = hooks_.context(t);
      const int64_t need = (int64_t)ctx.size() + hooks_.extra_tokens;
      if (need > max_capacity_) {
        hooks_.reject(t, hooks_.over_capacity(ctx.size()));
        queue_.pop_front();
        continue;
      }
      // A pool that can grow to hold it: it waits for the memory arbiter,
      // which hears of it (max_need()).
      waiting_need_ = need > capacity_ ? need : 0;
      if (need > capacity_) return Blocked::kRoom;
      if (t.background() && hold_background_) return Blocked::kHold;
      if (t.background() && hooks_.background_fits && !hooks_.background_fits()) return Blocked::kBound;
      const bool from_kept = t.job.from_job != 0 && kept_.has(t.job.rid, t.job.from_job);
      if (t.background() && hooks_.background_free_blocks_only &&
          engine_->kv_stats().free_blocks <
              (from_kept ? 2 : ((int64_t)ctx.size() + o_.block_size - 1) / o_.block_size + 1))
        return Blocked::kBound;
      if (!from_kept && should_wait_for_shared_prefix(ctx)) return Blocked::kSharedPrefix;
      auto started = start_sequence(t, ctx);
      if (!started) {
        if (!running_.empty()) {  // wait for running tasks to free blocks
          short_of_blocks_ = true;
          return Blocked::kRoom;
        }
        if (kept_.free_one(*engine_)) continue;  // kept sequences hold the blocks: free them first
        // Nothing holds blocks, so the pool itself is too small (never spin).
        hooks_.reject(t, started.error().message);
        queue_.pop_front();
        continue;
      }
      const auto [seq, n_cached] = *started;
      if (t.background() && hooks_.background_max_uncached >= 0 &&
          (int64_t)ctx.size() - n_cached > hooks_.background_max_uncached) {
        engine_->release(seq);
        return Blocked::kBound;
      }
      t.seq = seq;
      if (hooks_.admitted) hooks_.admitted(t, ctx, n_cached);
      if (!t.admitted_once) {
        t.admitted_once = true;
        t.admitted = Clock::now();
      }
      running_.push_back(std::move(t));
      queue_.pop_front();
    }
    return Blocked::kNone;
  }

  // A new sequence for `t` holding ctx: from the kept sequence its job
  // names, else from the prefix cache. Returns it and how many of ctx's
  // tokens have KV; error when no blocks are left.
  Expected<std::pair<int64_t, int32_t>> start_sequence(Task& t, std::span<const int32_t> ctx) {
    if (t.job.from_job != 0) {
      auto k = kept_.start(*engine_, t.job.rid, t.job.from_job, t.from_counted, next_seq_, ctx);
      if (!k) return k.error();
      if (*k) {
        t.from_counted = false;
        if ((*k)->seq == next_seq_) ++next_seq_;
        return std::pair<int64_t, int32_t>{(*k)->seq, (*k)->computed};
      }
      if (t.from_counted) {  // it starts from the prefix cache: the kept sequence need not wait for it
        kept_.drop_user(*engine_, t.job.rid, t.job.from_job);
        t.from_counted = false;
      }
    }
    const int64_t seq = next_seq_;
    auto added = engine_->add_sequence(seq, ctx, /*reuse_prefix=*/true);
    if (!added) return added.error();
    ++next_seq_;
    return std::pair<int64_t, int32_t>{seq, *added};
  }

  bool should_wait_for_shared_prefix(std::span<const int32_t> ctx) const {
    // A running task that will soon hold KV this one could reuse (sibling
    // beams of one prompt): admitting now would compute the shared blocks twice.
    for (const Task& r : running_) {
      int32_t share = shareable_prefix_tokens(ctx, engine_->tokens(r.seq), o_.block_size);
      if (share > 0 && engine_->n_computed(r.seq) < share) return true;
    }
    return false;
  }

  // Stops the running background task admitted last (of those `eligible`);
  // false when none runs.
  bool stop_newest_background(const std::function<bool(const Task&)>& eligible = {}) {
    for (size_t k = running_.size(); k-- > 0;) {
      if (!running_[k].background() || (eligible && !eligible(running_[k]))) continue;
      assert(hooks_.stop);
      making_room_ = true;  // its sequence is freed, not kept
      hooks_.stop(running_[k]);
      making_room_ = false;
      assert(running_[k].left);
      running_.erase(running_.begin() + (ptrdiff_t)k);
      return true;
    }
    return false;
  }

  // Grows or shrinks the pool to kv_bytes. A shrink first frees what holds
  // blocks above the new size: running background tasks (stopped), then
  // kept sequences, then foreground tasks, preempted in preempt()'s order;
  // cached blocks there are dropped by the pool. Returns how many tasks and
  // kept sequences it freed; error (the pool as it was) when the engine refuses.
  Expected<int32_t> resize(int64_t kv_bytes) {
    const int32_t first = (int32_t)(kv_bytes / (int64_t)engine_->kv_block_bytes());
    int32_t freed = 0;
    while (first < engine_->kv().n_blocks()) {
      auto holds = [&](const Task& t) { return engine_->holds_block_from(t.seq, first); };
      if (stop_newest_background(holds) || kept_.free_holding(*engine_, first)) {
        ++freed;
        continue;
      }
      if (!std::any_of(running_.begin(), running_.end(), holds)) break;
      preempt(holds);
      ++freed;
    }
    FLASHTTS_TRY(engine_->resize_kv((size_t)kv_bytes));
    return freed;
  }

  void preempt(const std::function<bool(const Task&)>& eligible = {}) {
    size_t k = running_.size();
    for (size_t i = running_.size(); i-- > 0;) {
      if (eligible && !eligible(running_[i])) continue;
      if (k == running_.size() || (o_.by_priority && running_[i].job.priority < running_[k].job.priority)) k = i;
    }
    assert(k < running_.size());
    Task t = std::move(running_[k]);
    running_.erase(running_.begin() + (ptrdiff_t)k);
    engine_->release(t.seq);
    t.seq = -1;
    ++t.n_preempted;
    ++preemptions_;
    log_->debug("preempted job {} of request {}", t.job.job_id, t.job.rid);
    if (t.background()) queue_.insert(first_background(), std::move(t));
    else queue_.push_front(std::move(t));
    hold_admission_ = true;
  }

  const EngineActorOptions& o_;
  Logger log_;
  Hooks hooks_;
  std::unique_ptr<Engine> engine_;
  std::shared_ptr<const std::vector<int32_t>> sample_ids_;
  int64_t kv_bytes_ = 0;
  int32_t capacity_ = 0;
  int32_t max_capacity_ = 0;
  int64_t resizes_ = 0;  // grants that changed the pool's size
  int64_t waiting_need_ = 0;  // the queue's head waits for the pool to grow to this
  bool stalled_ = false;      // the last admit() left tasks queued and none running

  std::deque<Task> queue_;     // foreground, then background; arrival order within each
  std::vector<Task> running_;  // admission order
  int64_t next_seq_ = 1;
  KeptKv kept_;                   // live beams' sequences between their jobs
  JobTails tails_;                // dead branches first: finished jobs' own blocks
  bool short_of_blocks_ = false;  // the last admission round found no blocks for the head
  bool making_room_ = false;      // a background task is being stopped for room
  bool hold_admission_ = false;   // after a preemption, until a task leaves (or none runs)
  bool hold_background_ = false;  // after a background task was stopped for KV, until a task leaves
  int64_t preemptions_ = 0;
  int32_t kv_blocks_peak_ = 0;
};

}  // namespace flashtts
