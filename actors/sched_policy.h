// The order in which queued GPU work leaves the scheduler, and the KV
// tokens what left may hold (the scheduler's admission counts them against
// the model's grant).
//
// - "fifo" (the baseline, what vLLM does): arrival order; a job costs its
//   whole context plus the tokens it may write, shared prefixes counted for
//   every job that holds them.
// - "prefix" (DESIGN.md, "dynamic prefix-aware scheduling"): over a prefix
//   tree of the queued and in-flight jobs (actors/prefix_tree.h), the next
//   job is the queued one that shares the longest prefix with the job
//   dispatched just before it, ties by priority (a beam's score: the better
//   beams first) and then by age, so children of one parent go together and
//   parents keep their order. No job waits forever: once the oldest queued
//   job has seen `max_overtaken` dispatches since it arrived, it goes next.
//   A job costs only the tokens no in-flight job holds (shared prefixes
//   once), so admission does not refuse work that fits. With
//   `by_request` (policies.request_order = "arrival"), where the prefix does
//   not decide, the older request's job goes first.
// - "random" and "scatter" (for measurement, docs/performance.md): the
//   prefix policy's accounting with another order: a random queued job, or
//   the one sharing the shortest prefix with the last (the worst order).
//
// Thread contract: owned and called by the scheduler actor only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/prefix_tree.h"
#include "runtime/base/status.h"

namespace flashtts {

// One unit of queued work, as the scheduler sees it.
struct QueuedJob {
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t priority = 0;        // higher first
  std::vector<Chunk> chunks;   // its context's shareable part (prefix_tree.h)
  int64_t tail_tokens = 0;     // KV tokens past the chunks: the rest of its context and what it writes
  int64_t cost_tokens = 0;     // what it costs: all of it when queued; from pop(), what it added
  std::string bytes;           // the encoded job message, forwarded as is
};

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual const char* name() const = 0;
  virtual void push(QueuedJob job) = 0;
  // The next job, if its cost (cost_tokens, set) fits `max_cost` tokens; it
  // is then in flight until done(). A job that does not fit stays queued,
  // and so does everything behind it (no overtaking a big job).
  virtual std::optional<QueuedJob> pop(int64_t max_cost) = 0;
  // An in-flight job ended: true; unknown ids (not in flight) are ignored: false.
  virtual bool done(uint64_t job_id) = 0;
  virtual size_t inflight() const = 0;  // jobs popped and not done
  // KV tokens the in-flight jobs may hold together.
  virtual int64_t held_tokens() const = 0;
  // Drops every queued and in-flight job of a request; returns how many were queued.
  virtual size_t remove_request(uint64_t rid) = 0;
  virtual size_t size() const = 0;  // queued jobs
};

struct SchedulingOptions {
  std::string name = "fifo";     // fifo | prefix | random | scatter
  int64_t max_overtaken = 1024;  // prefix family: the oldest job's wait bound, in dispatches
  uint64_t seed = 1;             // random
  // prefix family (policies.request_order = "arrival"): where the prefix
  // does not decide (the jobs share no more with the last than with each
  // other), the older request's job first, before priority and age.
  bool by_request = false;
};

std::unique_ptr<SchedulingPolicy> make_fifo_policy();
std::unique_ptr<SchedulingPolicy> make_tree_policy(const SchedulingOptions& o);

// By the configuration's name.
Expected<std::unique_ptr<SchedulingPolicy>> make_scheduling_policy(const SchedulingOptions& o);

// Whether the policy is one of the prefix tree's (it has something to
// order only with a queue in front of the model).
bool is_tree_policy(const std::string& name);

}  // namespace flashtts
