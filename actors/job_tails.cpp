#include "actors/job_tails.h"

namespace flashtts {

void JobTails::record(const Engine& e, uint64_t rid, uint64_t job, int64_t seq, int32_t own_from) {
  std::vector<CachedBlock> blocks = e.registered_from(seq, own_from);
  if (blocks.empty()) return;
  for (const CachedBlock& b : blocks) ++listed_[b.id];
  auto [it, fresh] = tails_.try_emplace({rid, job});
  if (!fresh) unlist(it->second);  // a job ends once; a second record replaces the first
  it->second = std::move(blocks);
}

int32_t JobTails::drop(Engine& e, uint64_t rid, std::span<const uint64_t> jobs) {
  std::vector<CachedBlock> unlisted;
  for (uint64_t job : jobs) {
    auto it = tails_.find({rid, job});
    if (it == tails_.end()) continue;
    unlist(it->second, &unlisted);
    tails_.erase(it);
  }
  const int32_t n = e.discard(unlisted);
  dropped_ += n;
  return n;
}

void JobTails::forget(uint64_t rid) {
  auto it = tails_.lower_bound({rid, 0});
  while (it != tails_.end() && it->first.first == rid) {
    unlist(it->second);
    it = tails_.erase(it);
  }
}

void JobTails::unlist(const std::vector<CachedBlock>& blocks, std::vector<CachedBlock>* unlisted) {
  for (const CachedBlock& b : blocks) {
    auto l = listed_.find(b.id);
    if (--l->second > 0) continue;
    listed_.erase(l);
    if (unlisted) unlisted->push_back(b);
  }
}

void JobTails::add_stats(msg::MapWriter& st) const {
  st.put("tails_recorded", (int64_t)tails_.size()).put("kv_dropped_blocks", dropped_);
}

}  // namespace flashtts
