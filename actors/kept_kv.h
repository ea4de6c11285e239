// Live beams (policies.live_beams): the engine sequences an engine actor
// keeps after their jobs ended, so that the beams that continue them fork
// their KV instead of computing their context again (docs/pipeline.md, "A
// beam's life").
//
// A job with keep_kv leaves its sequence here under (rid, job id) when it
// ends. A later job naming it in from_job starts as a fork of it, cut back to
// the tokens they share. The beam manager's release_kv says when nobody will
// fork it again: it is freed then, or, when jobs that name it are still
// queued, taken over by the last of them (no copy). Freed on release, a
// kept sequence's blocks no other sequence holds leave the prefix cache (a
// pruned beam's tokens are asked for by nobody). Under memory pressure the
// batch frees kept sequences, oldest first, before it stops or preempts
// running work; their full blocks then stay in the prefix cache, which is
// where a job whose kept sequence is gone finds its context.
//
// Thread contract: owned by one Batch (actors/batch.h), on its engine
// actor's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "gpu/engine.h"
#include "messages/msgpack_io.h"
#include "runtime/base/status.h"

namespace flashtts {

class KeptKv {
 public:
  // free_one() takes the lowest priority first (EngineActorOptions::by_priority).
  explicit KeptKv(bool by_priority = false) : by_priority_(by_priority) {}

  // Keeps `seq` for (rid, job), whose job had `priority`.
  void keep(uint64_t rid, uint64_t job, int64_t seq, int32_t priority = 0);
  bool has(uint64_t rid, uint64_t job) const { return kept_.count({rid, job}) != 0; }

  // A queued job names (rid, job) in from_job: counted until it starts (or
  // leaves), so that a release waits for it. False when nothing is kept.
  bool add_user(uint64_t rid, uint64_t job);
  // A counted job left the queue without starting.
  void drop_user(Engine& e, uint64_t rid, uint64_t job);

  // Starts a sequence holding `ctx` from the kept (rid, job): a fork of it
  // numbered `new_seq` (or, for the last user of a released one, the kept
  // sequence itself), cut back to what it shares with ctx, at most all of ctx
  // but its last token, then ctx's other tokens appended as pending.
  // `counted`: the job was counted by add_user. Returns the sequence and how
  // many of ctx's tokens have KV; nullopt when nothing is kept for (rid, job)
  // or the prefix cache holds more of ctx than it shares (the caller adds
  // the sequence the usual way). Error when no block is left for the fork's copy of a partial
  // block: nothing changed.
  struct Started {
    int64_t seq = -1;
    int32_t computed = 0;
  };
  Expected<std::optional<Started>> start(Engine& e, uint64_t rid, uint64_t job, bool counted, int64_t new_seq,
                                         std::span<const int32_t> ctx);

  // release_kv: frees these, or marks them to be taken over by their last user.
  void release(Engine& e, uint64_t rid, std::span<const uint64_t> jobs);
  // Forget: frees every sequence kept for the request.
  void forget(Engine& e, uint64_t rid);
  // Memory pressure: frees the oldest kept sequence no queued job names, else
  // the oldest (by_priority: the lowest priority of each, then the oldest);
  // its blocks stay in the prefix cache. False when none is kept.
  bool free_one(Engine& e);
  // A shrinking pool: frees one kept sequence (in free_one's order) that
  // holds a block numbered `first` or above. False when none does.
  bool free_holding(Engine& e, int32_t first);

  // For an actor's stats: kv_kept (sequences kept now), kept_forked_tokens
  // (context tokens jobs started from kept KV) and kept_freed_for_room.
  void add_stats(msg::MapWriter& st) const;

 private:
  struct Kept {
    int64_t seq = -1;
    int32_t users = 0;      // queued jobs that name it and have not started
    bool released = false;  // release_kv came: the last user takes it over
    uint64_t order = 0;     // when it was kept
    int32_t priority = 0;   // its job's
  };
  using Key = std::pair<uint64_t, uint64_t>;  // (rid, job id)

  bool free_first(Engine& e, const std::function<bool(int64_t seq)>& eligible);

  bool by_priority_ = false;
  std::map<Key, Kept> kept_;
  uint64_t next_order_ = 0;
  int64_t forked_tokens_ = 0;
  int64_t freed_for_room_ = 0;
};

}  // namespace flashtts
