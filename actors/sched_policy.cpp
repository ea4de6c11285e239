#include "actors/sched_policy.h"

#include <deque>
#include <random>
#include <set>
#include <unordered_map>

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
    inflight_[j.job_id] = {j.rid, j.cost_tokens};
    held_ += j.cost_tokens;
    return j;
  }
  bool done(uint64_t job_id) override {
    auto it = inflight_.find(job_id);
    if (it == inflight_.end()) return false;
    held_ -= it->second.second;
    inflight_.erase(it);
    return true;
  }
  size_t inflight() const override { return inflight_.size(); }
  int64_t held_tokens() const override { return held_; }
  size_t remove_request(uint64_t rid) override {
    std::erase_if(inflight_, [&](const auto& kv) {
      if (kv.second.first != rid) return false;
      held_ -= kv.second.second;
      return true;
    });
    size_t before = q_.size();
    std::erase_if(q_, [rid](const QueuedJob& j) { return j.rid == rid; });
    return before - q_.size();
  }
  size_t size() const override { return q_.size(); }

 private:
  std::deque<QueuedJob> q_;
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> inflight_;  // job_id -> (rid, cost)
  int64_t held_ = 0;
};

// The prefix tree's policies: the order comes from the tree (prefix,
// scatter) or a seeded draw (random); the accounting is the tree's.
class TreePolicy final : public SchedulingPolicy {
 public:
  enum class Order { kPrefix, kScatter, kRandom };

  TreePolicy(Order order, const SchedulingOptions& o)
      : order_(order), name_(o.name), max_overtaken_(o.max_overtaken), by_request_(o.by_request), rng_(o.seed) {}
  ~TreePolicy() override {
    for (auto& [seq, e] : entries_) tree_.release(e.end);
    if (cursor_) tree_.release(cursor_);
  }

  const char* name() const override { return name_.c_str(); }

  void push(QueuedJob job) override {
    const uint64_t seq = ++next_seq_;
    Entry& e = entries_[seq];
    e.end = tree_.acquire(job.chunks);
    job.chunks.clear();
    job.chunks.shrink_to_fit();
    e.arrived_at = dispatches_;
    e.job = std::move(job);
    by_job_[e.job.job_id] = seq;
    of_rid_[e.job.rid].insert(seq);
    enqueue(seq, e);
  }

  std::optional<QueuedJob> pop(int64_t max_cost) override {
    if (by_age_.empty()) return std::nullopt;
    const uint64_t seq = choose();
    Entry& e = entries_.at(seq);
    const int64_t cost = tree_.unheld_tokens(e.end) + e.job.tail_tokens;
    if (cost > max_cost) return std::nullopt;
    dequeue(seq, e);
    e.inflight = true;
    tree_.hold(e.end);
    held_tails_ += e.job.tail_tokens;
    tree_.retain(e.end);
    if (cursor_) tree_.release(cursor_);
    cursor_ = e.end;
    ++dispatches_;
    QueuedJob out;
    out.job_id = e.job.job_id, out.rid = e.job.rid, out.priority = e.job.priority;
    out.tail_tokens = e.job.tail_tokens, out.cost_tokens = cost, out.bytes = std::move(e.job.bytes);
    return out;
  }

  bool done(uint64_t job_id) override {
    auto it = by_job_.find(job_id);
    if (it == by_job_.end()) return false;
    auto e = entries_.find(it->second);
    if (!e->second.inflight) return false;
    erase(e);
    return true;
  }

  size_t inflight() const override { return entries_.size() - by_age_.size(); }

  int64_t held_tokens() const override { return tree_.held_tokens() + held_tails_; }

  size_t remove_request(uint64_t rid) override {
    auto r = of_rid_.find(rid);
    if (r == of_rid_.end()) return 0;
    size_t queued = 0;
    for (uint64_t seq : std::set<uint64_t>(r->second)) {
      auto e = entries_.find(seq);
      queued += !e->second.inflight;
      erase(e);
    }
    return queued;
  }

  size_t size() const override { return by_age_.size(); }

 private:
  struct Entry {
    QueuedJob job;  // its chunks live in the tree, its bytes leave at dispatch
    PrefixTree::Node* end = nullptr;
    uint64_t arrived_at = 0;  // dispatches_ at arrival
    bool inflight = false;
  };

  // policies.request_order = "arrival": the older request first (the
  // intake numbers requests in arrival order).
  PrefixTree::Rank rank(uint64_t seq, const Entry& e) const {
    return {by_request_ ? e.job.rid : 0, -(int64_t)e.job.priority, seq};
  }

  void enqueue(uint64_t seq, Entry& e) {
    tree_.enqueue(e.end, rank(seq, e));
    by_age_.insert(seq);
    if (order_ == Order::kRandom) {
      pos_[seq] = pool_.size();
      pool_.push_back(seq);
    }
  }

  void dequeue(uint64_t seq, Entry& e) {
    tree_.dequeue(e.end, rank(seq, e));
    by_age_.erase(seq);
    if (order_ == Order::kRandom) {
      const size_t at = pos_.at(seq);
      pos_[pool_.back()] = at;
      pool_[at] = pool_.back();
      pool_.pop_back();
      pos_.erase(seq);
    }
  }

  void erase(std::unordered_map<uint64_t, Entry>::iterator it) {
    const uint64_t seq = it->first;
    Entry& e = it->second;
    if (e.inflight) {
      tree_.unhold(e.end);
      held_tails_ -= e.job.tail_tokens;
    } else {
      dequeue(seq, e);
    }
    tree_.release(e.end);
    by_job_.erase(e.job.job_id);
    auto r = of_rid_.find(e.job.rid);
    r->second.erase(seq);
    if (r->second.empty()) of_rid_.erase(r);
    entries_.erase(it);
  }

  uint64_t choose() {
    const uint64_t oldest = *by_age_.begin();
    if ((int64_t)(dispatches_ - entries_.at(oldest).arrived_at) >= max_overtaken_) return oldest;
    switch (order_) {
      case Order::kPrefix: return tree_.nearest(cursor_)->seq;
      case Order::kScatter: return tree_.farthest(cursor_)->seq;
      case Order::kRandom:
        // The draw stands until that job leaves the queue: a pop that found
        // no room for it, and the next, mean the same job.
        if (!drawn_ || !by_age_.count(drawn_))
          drawn_ = pool_[std::uniform_int_distribution<size_t>(0, pool_.size() - 1)(rng_)];
        return drawn_;
    }
    return oldest;
  }

  Order order_;
  std::string name_;
  int64_t max_overtaken_;
  bool by_request_;
  std::mt19937_64 rng_;
  PrefixTree tree_;
  std::unordered_map<uint64_t, Entry> entries_;               // seq -> queued or in-flight job
  std::unordered_map<uint64_t, uint64_t> by_job_;             // job id -> seq
  std::unordered_map<uint64_t, std::set<uint64_t>> of_rid_;   // rid -> seqs
  std::set<uint64_t> by_age_;                                 // queued seqs, oldest first
  std::vector<uint64_t> pool_;                                // random: queued seqs
  std::unordered_map<uint64_t, size_t> pos_;                  // random: seq -> index in pool_
  PrefixTree::Node* cursor_ = nullptr;                        // the path dispatched last (retained)
  uint64_t drawn_ = 0;                                        // random: the queued seq drawn, 0 = none
  uint64_t next_seq_ = 0;
  uint64_t dispatches_ = 0;
  int64_t held_tails_ = 0;
};

}  // namespace

std::unique_ptr<SchedulingPolicy> make_fifo_policy() { return std::make_unique<FifoPolicy>(); }

bool is_tree_policy(const std::string& name) { return name == "prefix" || name == "random" || name == "scatter"; }

std::unique_ptr<SchedulingPolicy> make_tree_policy(const SchedulingOptions& o) {
  const auto order = o.name == "scatter"  ? TreePolicy::Order::kScatter
                     : o.name == "random" ? TreePolicy::Order::kRandom
                                          : TreePolicy::Order::kPrefix;
  return std::make_unique<TreePolicy>(order, o);
}

Expected<std::unique_ptr<SchedulingPolicy>> make_scheduling_policy(const SchedulingOptions& o) {
  if (o.name == "fifo") return make_fifo_policy();
  if (is_tree_policy(o.name)) return make_tree_policy(o);
  return make_error("scheduling policy '" + o.name + "' is not one of: fifo, prefix, random, scatter");
}

}  // namespace flashtts
