// The scheduler's prefix tree (policies.scheduling = "prefix"; DESIGN.md,
// "dynamic prefix-aware scheduling"): the contexts of the queued and
// in-flight jobs of every request, as paths of chunks from one root.
//
// A chunk is a full KV block of a generation job's context, keyed by its
// tokens, so two paths part exactly where the engine's prefix cache stops
// sharing blocks; for a scoring job (whose PRM tokens the scheduler never
// sees) a chunk is the problem or one step, weighted by its bytes times the
// PRM tokens per byte the scheduler measured (actors/scheduler.cpp). What
// is past the last chunk (a partial block, the tokens a job will write) is
// the job's tail, which no other job shares.
//
// It answers, in O(depth log n) at N = 512 beams x several requests:
// - the order: the queued job that shares the longest prefix with a given
//   path (nearest) or the shortest (farthest, the worst order, for
//   measurement), ties by priority, then by age. Each node keeps the best
//   rank queued in its subtree, and its children ordered by theirs;
//   enqueue and dequeue update the ranks up the path while they change.
// - the cost: the tokens of a path that no in-flight path holds.
// - the KV tokens the in-flight paths hold together, shared chunks once.
//
// A node lives while a path references it (acquire/retain .. release).
//
// Thread contract: owned by one scheduling policy, on the scheduler actor's
// thread; not thread-safe.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>

namespace flashtts {

struct Chunk {
  uint64_t key = 0;    // content hash; equal keys under one parent are one node
  int32_t tokens = 0;  // KV tokens it stands for
};

class PrefixTree {
 public:
  // A queued job's place in the order: the older request first where the
  // policy orders requests (smaller `request`; 0 for every job where it
  // does not), then higher priority, then older (smaller seq). seq is
  // unique per job.
  struct Rank {
    uint64_t request = 0;
    int64_t neg_priority = 0;
    uint64_t seq = 0;
    auto operator<=>(const Rank&) const = default;
  };

  struct Node {
    Node* parent = nullptr;
    uint64_t key = 0;
    int32_t tokens = 0;
    int64_t refs = 0;    // paths through it
    int64_t held = 0;    // in-flight paths through it
    std::unordered_map<uint64_t, std::unique_ptr<Node>> children;
    std::set<Rank> own;                     // queued jobs whose path ends here
    std::set<std::pair<Rank, Node*>> kids;  // children with queued jobs below, by their best
    std::optional<Rank> best;               // best of own and kids
  };

  PrefixTree() = default;
  PrefixTree(const PrefixTree&) = delete;
  PrefixTree& operator=(const PrefixTree&) = delete;

  // The node at the end of `path`, created as needed, with one more
  // reference on it and on every node above it.
  Node* acquire(std::span<const Chunk> path);
  // One more reference along the path ending at `end`.
  void retain(Node* end);
  // One reference fewer along the path ending at `end`; nodes no path
  // references are deleted. REQUIRES: a reference taken by acquire/retain.
  void release(Node* end);

  // Queued jobs. REQUIRES (dequeue): r was enqueued at `end`.
  void enqueue(Node* end, Rank r);
  void dequeue(Node* end, Rank r);

  // The best queued job among those sharing the longest prefix with the
  // path ending at `from` (the root: any). nullopt when none is queued.
  std::optional<Rank> nearest(const Node* from) const;
  // The best queued job among those sharing the shortest prefix with it.
  std::optional<Rank> farthest(const Node* from) const;

  // In-flight paths: a held node's tokens count once in held_tokens().
  int64_t unheld_tokens(const Node* end) const;
  void hold(Node* end);
  void unhold(Node* end);
  int64_t held_tokens() const { return held_tokens_; }

  size_t nodes() const { return nodes_; }  // the root excluded

 private:
  void refresh(Node* n);  // recomputes best from n up while it changes

  Node root_;
  int64_t held_tokens_ = 0;
  size_t nodes_ = 0;
};

}  // namespace flashtts
