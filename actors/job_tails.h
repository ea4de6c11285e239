// Dead branches leave the prefix cache first (policies.eviction = "pruned";
// docs/pipeline.md, "The order of the work"). Without live beams a finished
// job's KV stays in the prefix cache, least recently used last; a pruned
// beam's step is as recent as a survivor's, so under memory pressure LRU
// evicts survivors' steps while the dead ones stay.
//
// Each finished job's own blocks (the registered blocks from the one holding
// its first own token on: its step, not the context it shares) are recorded
// under (rid, job). When the beam manager's drop_kv names the job (its beam
// was pruned or set aside, so nothing continues it), the blocks of its record
// that no other record lists, and that no sequence holds, are freed at once
// (KvCache::discard). Listing counts make this safe where beams wrote the
// same tokens: a block a live beam's job also wrote stays. Records go with
// drop_kv, or with the request's forget.
//
// Thread contract: owned by one Batch (actors/batch.h), on its engine
// actor's thread.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gpu/engine.h"
#include "messages/msgpack_io.h"

namespace flashtts {

class JobTails {
 public:
  // The job's sequence is about to be released: records its blocks from the
  // one holding token `own_from` on.
  void record(const Engine& e, uint64_t rid, uint64_t job, int64_t seq, int32_t own_from);
  // drop_kv: frees what only these jobs' records list. Unknown ids are
  // ignored. Returns the blocks freed.
  int32_t drop(Engine& e, uint64_t rid, std::span<const uint64_t> jobs);
  // Forget: drops the request's records (their blocks stay cached).
  void forget(uint64_t rid);

  size_t records() const { return tails_.size(); }
  // For an actor's stats: tails_recorded (records now), kv_dropped_blocks.
  void add_stats(msg::MapWriter& st) const;

 private:
  // Takes one record's listing of `blocks`; those no record lists any more
  // go to `unlisted` when given.
  void unlist(const std::vector<CachedBlock>& blocks, std::vector<CachedBlock>* unlisted = nullptr);

  std::map<std::pair<uint64_t, uint64_t>, std::vector<CachedBlock>> tails_;  // (rid, job) -> own blocks
  std::unordered_map<uint64_t, int32_t> listed_;  // cache id -> records listing it
  int64_t dropped_ = 0;
};

}  // namespace flashtts
