#include "actors/kept_kv.h"

#include <algorithm>
#include <tuple>

namespace flashtts {

void KeptKv::keep(uint64_t rid, uint64_t job, int64_t seq, int32_t priority) {
  kept_[{rid, job}] = Kept{seq, 0, false, next_order_++, priority};
}

bool KeptKv::add_user(uint64_t rid, uint64_t job) {
  auto it = kept_.find({rid, job});
  if (it == kept_.end()) return false;
  ++it->second.users;
  return true;
}

void KeptKv::drop_user(Engine& e, uint64_t rid, uint64_t job) {
  auto it = kept_.find({rid, job});
  if (it == kept_.end()) return;
  Kept& k = it->second;
  if (--k.users == 0 && k.released) {
    e.release(k.seq, /*drop=*/true);
    kept_.erase(it);
  }
}

Expected<std::optional<KeptKv::Started>> KeptKv::start(Engine& e, uint64_t rid, uint64_t job, bool counted,
                                                       int64_t new_seq, std::span<const int32_t> ctx) {
  auto it = kept_.find({rid, job});
  if (it == kept_.end() || ctx.empty()) return std::optional<Started>{};
  Kept& k = it->second;
  std::span<const int32_t> have = e.tokens(k.seq);
  const size_t limit = std::min(have.size(), ctx.size() - 1);
  const auto shared = (int32_t)(std::mismatch(have.begin(), have.begin() + (ptrdiff_t)limit, ctx.begin()).first -
                                have.begin());
  // The prefix cache may hold more of ctx than the kept sequence shares (a
  // step written ahead and scored on its own): then it is the better start.
  if (shared == 0 || e.cached_prefix(ctx) > shared) return std::optional<Started>{};
  int64_t seq = new_seq;
  if (counted && k.released && k.users == 1) {
    seq = k.seq;  // the last job to start from a released sequence takes it over
    kept_.erase(it);
  } else {
    if (Status s = e.fork(k.seq, seq); !s.ok()) return s.error();
    if (counted) --k.users;
  }
  e.truncate(seq, shared);
  e.append(seq, ctx.subspan((size_t)shared));
  const int32_t computed = e.n_computed(seq);
  forked_tokens_ += computed;
  return std::optional<Started>{Started{seq, computed}};
}

void KeptKv::add_stats(msg::MapWriter& st) const {
  st.put("kv_kept", (int64_t)kept_.size()).put("kept_forked_tokens", forked_tokens_);
  st.put("kept_freed_for_room", freed_for_room_);
}

void KeptKv::release(Engine& e, uint64_t rid, std::span<const uint64_t> jobs) {
  for (uint64_t job : jobs) {
    auto it = kept_.find({rid, job});
    if (it == kept_.end()) continue;
    if (it->second.users > 0) {
      it->second.released = true;
      continue;
    }
    e.release(it->second.seq, /*drop=*/true);
    kept_.erase(it);
  }
}

void KeptKv::forget(Engine& e, uint64_t rid) {
  for (auto it = kept_.lower_bound({rid, 0}); it != kept_.end() && it->first.first == rid;) {
    e.release(it->second.seq);
    it = kept_.erase(it);
  }
}

bool KeptKv::free_one(Engine& e) {
  return free_first(e, [](int64_t) { return true; });
}

bool KeptKv::free_holding(Engine& e, int32_t first) {
  return free_first(e, [&](int64_t seq) { return e.holds_block_from(seq, first); });
}

bool KeptKv::free_first(Engine& e, const std::function<bool(int64_t seq)>& eligible) {
  // Unnamed by queued jobs first, then the oldest.
  auto rank = [&](const auto& kv) {
    return std::tuple(kv.second.users != 0, by_priority_ ? kv.second.priority : 0, kv.second.order);
  };
  auto pick = kept_.end();
  for (auto it = kept_.begin(); it != kept_.end(); ++it)
    if (eligible(it->second.seq) && (pick == kept_.end() || rank(*it) < rank(*pick))) pick = it;
  if (pick == kept_.end()) return false;
  e.release(pick->second.seq);
  kept_.erase(pick);
  ++freed_for_room_;
  return true;
}

}  // namespace flashtts
