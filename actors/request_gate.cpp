#include "actors/request_gate.h"

#include <algorithm>
#include <cmath>

namespace flashtts {

namespace {

constexpr double kLearnRate = 0.3;  // the newest request's weight in the estimate

uint64_t chain(uint64_t parent, uint64_t key) {
  uint64_t h = parent ^ (key + 0x9e3779b97f4a7c15ull + (parent << 6) + (parent >> 2));
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

}  // namespace

bool RequestGate::open_for(uint64_t rid) {
  if (!enabled_) return true;
  auto [it, fresh] = requests_.try_emplace(rid);
  if (fresh) {
    it->second.seq = next_seq_++;
    pending_[it->second.seq] = rid;
  }
  return it->second.admitted;
}

void RequestGate::hold(uint64_t rid, Job j) {
  Request& r = requests_.at(rid);
  if (r.held.empty()) r.first = j.lane;
  r.held.push_back(std::move(j));
}

void RequestGate::opened(Lane lane, const QueuedJob& q, int64_t ctx_tokens) {
  if (!enabled_) return;
  auto it = requests_.find(q.rid);
  if (it == requests_.end()) return;
  Footprint& f = it->second.fp[lane];
  OpenJob o{q.rid, {}, 0};
  o.keys.reserve(q.chunks.size());
  uint64_t key = 0;
  int64_t chunked = 0;
  for (const Chunk& c : q.chunks) {
    key = chain(key, c.key);
    o.keys.push_back(key);
    chunked += c.tokens;
    auto [slot, fresh] = f.chunks.try_emplace(key, 0, c.tokens);
    if (slot->second.first++ == 0) f.tokens += slot->second.second;
  }
  o.tail = std::max<int64_t>(0, ctx_tokens - chunked);
  f.tokens += o.tail;
  f.peak = std::max(f.peak, f.tokens);
  open_[lane][q.job_id] = std::move(o);
}

void RequestGate::closed(Lane lane, uint64_t job_id) {
  auto o = open_[lane].find(job_id);
  if (o == open_[lane].end()) return;
  auto it = requests_.find(o->second.rid);
  if (it != requests_.end()) {
    Footprint& f = it->second.fp[lane];
    for (uint64_t key : o->second.keys) {
      auto c = f.chunks.find(key);
      if (c == f.chunks.end()) continue;
      if (--c->second.first == 0) f.tokens -= c->second.second, f.chunks.erase(c);
    }
    f.tokens -= o->second.tail;
  }
  open_[lane].erase(o);
}

std::vector<RequestGate::Job> RequestGate::admit(std::array<int64_t, 2> capacity) {
  std::vector<Job> out;
  std::array<int64_t, 2> used{0, 0};
  bool any = false;
  for (const auto& [rid, r] : requests_) {
    if (!r.admitted) continue;
    any = true;
    for (int l : {kGen, kVer}) used[l] += need(r, Lane(l));
  }
  while (!pending_.empty()) {
    auto p = pending_.begin();
    Request& r = requests_.at(p->second);
    std::array<int64_t, 2> estimate{-1, -1};
    if (learned_[r.first])
      for (int l : {kGen, kVer})
        estimate[l] = (int64_t)std::ceil(per_job_[r.first][l] * (double)r.held.size());
    bool fits = true;
    for (int l : {kGen, kVer})
      if (any && capacity[l] >= 0 && estimate[l] >= 0 && used[l] + estimate[l] > capacity[l]) fits = false;
    if (!fits) {
      if (!r.waited) r.waited = true, ++held_total_;
      break;  // arrival order: no request overtakes a waiting one
    }
    r.admitted = true;
    r.first_jobs = (int64_t)r.held.size();
    r.estimate = estimate;
    for (int l : {kGen, kVer}) used[l] += std::max<int64_t>(0, estimate[l]);
    any = true;
    for (Job& j : r.held) out.push_back(std::move(j));
    r.held.clear();
    pending_.erase(p);
  }
  return out;
}

void RequestGate::forget(uint64_t rid) {
  auto it = requests_.find(rid);
  if (it == requests_.end()) return;
  Request& r = it->second;
  if (r.admitted && r.first_jobs > 0) {
    for (int l : {kGen, kVer}) {
      const double per = (double)r.fp[l].peak / (double)r.first_jobs;
      double& e = per_job_[r.first][l];
      e = learned_[r.first] ? (1 - kLearnRate) * e + kLearnRate * per : per;
    }
    learned_[r.first] = true;
  }
  for (auto& lane : open_) std::erase_if(lane, [&](const auto& kv) { return kv.second.rid == rid; });
  if (!r.admitted) pending_.erase(r.seq);
  requests_.erase(it);
}

}  // namespace flashtts
