#include "actors/sched_policy.h"

#include <deque>

namespace flashtts {

namespace {

// Arrival order; the head blocks the queue when it does not fit (no
// overtaking: a big job is not starved by a stream of small ones).
class FifoPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "fifo"; }
  void push(QueuedJob job) override { q_.push_back(std::move(job)); }
  std::optional<QueuedJob> pop(int64_t max_cost) override {
    if (q_.empty() || q_.front().cost_tokens > max_cost) return std::nullopt;
    QueuedJob j = std::move(q_.front());
    q_.pop_front();
    return j;
  }
  size_t remove_request(uint64_t rid) override {
    size_t before = q_.size();
    std::erase_if(q_, [rid](const QueuedJob& j) { return j.rid == rid; });
    return before - q_.size();
  }
  size_t size() const override { return q_.size(); }

 private:
  std::deque<QueuedJob> q_;
};

}  // namespace

std::unique_ptr<SchedulingPolicy> make_fifo_policy() { return std::make_unique<FifoPolicy>(); }

Expected<std::unique_ptr<SchedulingPolicy>> make_scheduling_policy(const std::string& name) {
  if (name == "fifo") return make_fifo_policy();
  return make_error("scheduling policy '" + name + "' is not one of: fifo");
}

}  // namespace flashtts
