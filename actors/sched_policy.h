// The order in which queued GPU work leaves the scheduler. The baseline is
// FIFO (what vLLM does); the prefix-aware policy of DESIGN.md ("dynamic
// prefix-aware scheduling") implements the same interface.
//
// Thread contract: owned and called by the scheduler actor only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace flashtts {

// One unit of queued work, as the scheduler sees it.
struct QueuedJob {
  uint64_t job_id = 0;
  uint64_t rid = 0;
  int32_t priority = 0;
  int64_t cost_tokens = 0;           // KV tokens it may need (context + new tokens)
  std::vector<int32_t> tokens;       // its context, for prefix-aware policies
  std::string bytes;                 // the encoded job message, forwarded as is
};

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual const char* name() const = 0;
  virtual void push(QueuedJob job) = 0;
  // The next job to dispatch, if any fits `max_cost` tokens (a job bigger
  // than that stays queued until capacity frees up).
  virtual std::optional<QueuedJob> pop(int64_t max_cost) = 0;
  // Drops every queued job of a request; returns how many.
  virtual size_t remove_request(uint64_t rid) = 0;
  virtual size_t size() const = 0;
};

std::unique_ptr<SchedulingPolicy> make_fifo_policy();

// By the configuration's name ("fifo").
Expected<std::unique_ptr<SchedulingPolicy>> make_scheduling_policy(const std::string& name);

}  // namespace flashtts
