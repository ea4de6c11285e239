#include "actors/request_gate.h"

#include <algorithm>
#include <cmath>

#include "gpu/sample_hash.h"

namespace flashtts {

namespace {

constexpr double kLearnRate = 0.3;  // the newest request's weight in the estimate
constexpr uint64_t kTemplateKey = 0x7465'6d70'6c61'7465ull;  // a scoring input's template, shared by its beams

}  // namespace

bool RequestGate::open_for(uint64_t rid, int32_t beams) {
  if (!enabled_) return true;
  auto [it, fresh] = requests_.try_emplace(rid);
  if (fresh) {
    it->second.seq = next_seq_++;
    pending_[it->second.seq] = rid;
  }
  if (!it->second.admitted) it->second.beams = std::max<int64_t>(it->second.beams, beams);
  if (beams > 0) it->second.beams_known = true;
  return it->second.admitted;
}

void RequestGate::finished(uint64_t rid, Lane lane) {
  if (!enabled_) return;
  auto it = requests_.find(rid);
  if (it != requests_.end()) ++it->second.finished[lane];
}

double RequestGate::progress(const Request& r) const {
  if (!r.beams_known || r.beams <= 0 || !jobs_learned_[r.first] || !(jobs_per_beam_[r.first] > 0)) return 0;
  return std::min(1.0, (double)r.finished[r.first] / (jobs_per_beam_[r.first] * (double)r.beams));
}

void RequestGate::hold(uint64_t rid, Job j) {
  Request& r = requests_.at(rid);
  if (r.held.empty()) r.first = j.lane;
  r.held.push_back(std::move(j));
}

void RequestGate::Footprint::add(Context c) {
  for (const auto& [key, n] : c.chunks) {
    auto slot = chunks.try_emplace(key, 0, n).first;
    if (slot->second.first++ == 0) tokens += slot->second.second;
  }
  tokens += c.tail;
  peak = std::max(peak, tokens);
  latest.push_back(std::move(c));
}

void RequestGate::Footprint::drop_oldest() {
  for (const auto& [key, n] : latest.front().chunks) {
    auto c = chunks.find(key);
    if (c != chunks.end() && --c->second.first == 0) tokens -= c->second.second, chunks.erase(c);
  }
  tokens -= latest.front().tail;
  latest.pop_front();
}

void RequestGate::opened(Lane lane, const QueuedJob& q, int64_t ctx_tokens) {
  if (!enabled_) return;
  auto it = requests_.find(q.rid);
  if (it == requests_.end()) return;
  Request& r = it->second;
  Context c;
  c.chunks.reserve(q.chunks.size() + 1);
  uint64_t key = 0;
  int64_t chunked = 0;
  for (const Chunk& ch : q.chunks) {
    c.chunks.emplace_back(key = mix64(key ^ ch.key), ch.tokens);  // chained: a chunk's key names its position
    chunked += ch.tokens;
  }
  const int64_t past = std::max<int64_t>(0, ctx_tokens - chunked);
  // A generation context's partial last block is its own; a scoring input's
  // template (its tail) is the same for every beam, so it counts once.
  if (lane == kVer) c.chunks.emplace_back(kTemplateKey, (int32_t)past);
  else c.tail = past;
  Footprint& f = r.fp[lane];
  // The oldest leaves first: the footprint holds at most `beams` contexts at once.
  while (!f.latest.empty() && (int64_t)f.latest.size() >= std::max<int64_t>(1, r.beams)) f.drop_oldest();
  f.add(std::move(c));
}

std::vector<RequestGate::Job> RequestGate::admit(std::array<int64_t, 2> capacity, std::string* why) {
  std::vector<Job> out;
  std::array<int64_t, 2> used{0, 0};
  bool any = false;
  double done = 1;  // the least progress of the admitted requests
  for (const auto& [rid, r] : requests_) {
    if (!r.admitted) continue;
    any = true;
    done = std::min(done, progress(r));
    for (int l : {kGen, kVer}) used[l] += need(r, Lane(l));
  }
  while (!pending_.empty()) {
    auto p = pending_.begin();
    Request& r = requests_.at(p->second);
    if (r.beams <= 0) r.beams = (int64_t)r.held.size();
    std::array<int64_t, 2> estimate{-1, -1};
    if (learned_[r.first])
      for (int l : {kGen, kVer}) estimate[l] = (int64_t)std::ceil(per_beam_[r.first][l] * (double)r.beams);
    // At least half of its footprint fits in what the admitted leave: the
    // estimate is good to a few tens of percent, and a small overflow costs
    // less than the batching a whole request's wait loses. Once they are
    // more than half through, the part it will hold when they end: it goes
    // at their pace, and its footprint grows with its search.
    const double share = std::min(0.5, 1.0 - done);
    bool fits = true;
    for (int l : {kGen, kVer})
      if (any && capacity[l] >= 0 && estimate[l] >= 0 &&
          used[l] + (int64_t)std::ceil((double)estimate[l] * share) > capacity[l])
        fits = false;
    if (!fits) {
      if (!r.waited) r.waited = true, ++held_total_;
      if (why)
        *why = "request " + std::to_string(p->second) + " (" + std::to_string(r.held.size()) +
               " jobs) waits: its KV footprint, estimated at " + std::to_string(estimate[kGen]) + " / " +
               std::to_string(estimate[kVer]) + " tokens (generator / verifier), beside the " +
               std::to_string(used[kGen]) + " / " + std::to_string(used[kVer]) +
               " of the requests admitted (the least advanced " + std::to_string((int)std::lround(100 * done)) +
               "% through), is more than the grants' " + std::to_string(capacity[kGen]) + " / " +
               std::to_string(capacity[kVer]);
      break;  // arrival order: no request overtakes a waiting one
    }
    r.admitted = true;
    r.estimate = estimate;
    for (int l : {kGen, kVer}) used[l] += std::max<int64_t>(0, estimate[l]);
    any = true;
    done = 0;  // it has just begun
    for (Job& j : r.held) out.push_back(std::move(j));
    r.held.clear();
    pending_.erase(p);
  }
  return out;
}

void RequestGate::forget(uint64_t rid, bool completed) {
  auto it = requests_.find(rid);
  if (it == requests_.end()) return;
  Request& r = it->second;
  if (completed && r.admitted && r.beams > 0) {
    for (int l : {kGen, kVer}) {
      const double per = (double)r.fp[l].peak / (double)r.beams;
      double& e = per_beam_[r.first][l];
      e = learned_[r.first] ? (1 - kLearnRate) * e + kLearnRate * per : per;
    }
    learned_[r.first] = true;
    if (r.beams_known) {
      const double jobs = (double)r.finished[r.first] / (double)r.beams;
      double& e = jobs_per_beam_[r.first];
      e = jobs_learned_[r.first] ? (1 - kLearnRate) * e + kLearnRate * jobs : jobs;
      jobs_learned_[r.first] = true;
    }
  }
  if (!r.admitted) pending_.erase(r.seq);
  requests_.erase(it);
}

}  // namespace flashtts
