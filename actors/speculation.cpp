#include "actors/speculation.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numbers>
#include <utility>

#include "actors/trace.h"
#include "gpu/sampler.h"

namespace flashtts {

void SpecTally::add_stats(msg::MapWriter& st) const {
  msg::MapWriter sp;
  sp.put("jobs", jobs).put("tokens_generated", generated).put("tokens_kept", kept);
  sp.put("tokens_dropped", generated - kept).put("steps_reused", steps_reused);
  sp.put("pruned_early", pruned_early).put("pruned_early_stopped", pruned_early_stopped);
  sp.put("tokens_pruned_early", pruned_early_tokens);
  st.put("speculation", sp);
}

std::optional<GenRequest> step_job(const SearchSetup& setup, const SearchPath& path, Carry& carry, int32_t stream,
                                   bool last_iteration) {
  const msg::SolveParams& p = setup.params;
  if (carry.step && !p.trace.on() && last_iteration) {
    carry.prefix = std::move(carry.step->tokens);
    carry.step.reset();
  }
  if (carry.step) return std::nullopt;
  GenRequest g;
  g.beam = stream;
  g.tokens = setup.prompt;
  g.tokens.insert(g.tokens.end(), path.tokens.begin(), path.tokens.end());
  g.prefix = std::move(carry.prefix);
  g.priority = beam_priority(path, p.aggregation);
  if (p.trace.on()) {
    g.forced_tokens = g.max_tokens = trace_draw(p.trace, path.lineage, (int32_t)path.steps.size(), p.max_steps).tokens;
    g.stop_at_delimiter = false;
  } else {
    g.max_tokens = p.max_tokens_per_step;
    g.stop_at_delimiter = !last_iteration;
  }
  return g;
}

Verified take_verified(const SearchSetup& setup, const Carry& carry, SearchPath& path) {
  if (carry.scored_steps != path.steps) return Verified::kNo;
  if (carry.scored) {
    path.take_scores(carry.scores, &setup.params.trace, setup.params.max_steps);
    return Verified::kScored;
  }
  return carry.score_job ? Verified::kRunning : Verified::kNo;
}

int32_t SpecGroup::Speculation::kept() const { return cap < 0 ? 0 : std::min((int32_t)tokens.size(), cap); }
bool SpecGroup::Speculation::complete() const { return first > 0 && finish != "stopped" && first <= cap; }

SpecGroup::SpecGroup(const SearchSetup& setup, int32_t copies, SpecTally* tally)
    : s_(setup), copies_(copies), tally_(tally) {}

void SpecGroup::begin(size_t members) {
  members_.assign(members, Member{});
  specs_.assign(members, std::nullopt);
  jobs_.clear();
  scorings_.clear();  // results of pruned members' verification are ignored
  written_ = 0, pending_ = 0;
  at_barrier_ = false;
}

TraceDraw SpecGroup::draw(const SearchPath& path, int32_t ahead) const {
  return trace_draw(s_.params.trace, path.lineage, (int32_t)path.steps.size() + ahead, s_.params.max_steps);
}

std::vector<int32_t> SpecGroup::context(const SearchPath& path, const std::vector<int32_t>& ahead) const {
  std::vector<int32_t> c = s_.prompt;
  c.insert(c.end(), path.tokens.begin(), path.tokens.end());
  c.insert(c.end(), ahead.begin(), ahead.end());
  return c;
}

void SpecGroup::written(SearchHost& host, size_t m, const SearchPath& path, int32_t generated, bool goes_on,
                        int32_t stream, float prior, uint64_t kv_job) {
  Member& mb = members_[m];
  mb.path = path, mb.generated = generated, mb.goes_on = goes_on;
  mb.stream = stream, mb.prior = prior, mb.kv_job = kv_job;
  ++written_;
  if (goes_on && written_ < members_.size()) speculate(host, m, stream);
  if (written_ == members_.size()) cap(host);
}

void SpecGroup::speculate(SearchHost& host, size_t m, int32_t stream) {
  const Member& mb = members_[m];
  GenRequest g;
  g.beam = stream;
  g.tokens = context(mb.path, {});
  g.from_job = mb.kv_job;
  Speculation& sp = specs_[m].emplace();
  sp.member = m;
  sp.stream = stream;
  if (trace()) {
    g.forced_tokens = g.max_tokens = draw(mb.path, 0).tokens;
    g.stop_at_delimiter = false;
    // Copy c of this member has lineage_child(lineage, c).
    SearchPath copy = mb.path;
    for (int32_t c = 0; c < copies_; ++c) {
      copy.lineage = lineage_child(mb.path.lineage, c);
      sp.target = std::max(sp.target, draw(copy, 0).tokens);
    }
  } else {
    g.max_tokens = s_.params.max_tokens_per_step;
  }
  send(host, sp, std::move(g));
  ++pending_;
  ++tally_->jobs;
}

void SpecGroup::send(SearchHost& host, Speculation& sp, GenRequest g) {
  g.speculative = true;
  g.keep_kv = s_.live_beams;
  sp.part = g;
  sp.job = sp.kv_job = host.submit(std::move(g));
  jobs_[sp.job] = sp.member;
}

void SpecGroup::resume(SearchHost& host, Speculation& sp) {
  GenRequest g = sp.part;
  g.prefix.assign(sp.tokens.begin() + (sp.second ? sp.first : 0), sp.tokens.end());
  sp.cut = false;
  send(host, sp, std::move(g));
}

int32_t SpecGroup::Speculation::point() const { return second ? std::max(0, cap - first) : cap; }

void SpecGroup::cap(SearchHost& host) {
  int32_t longest = 0;
  for (const Member& mb : members_) longest = std::max(longest, mb.generated);
  // A member's bin counts the members ranked strictly above it, so copies of
  // one parent share a bin (all equal in a first iteration).
  std::vector<size_t> order(members_.size());
  for (size_t m = 0; m < order.size(); ++m) order[m] = m;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return members_[a].prior > members_[b].prior; });
  std::vector<int32_t> bin(members_.size(), 0);
  for (size_t i = 0, first = 0; i < order.size(); ++i) {
    if (members_[order[i]].prior != members_[order[first]].prior) first = i;
    bin[order[i]] = (int32_t)(4 * first / order.size());
  }
  std::vector<uint64_t> ids;
  std::vector<int32_t> at;
  for (size_t m = 0; m < members_.size(); ++m) {
    if (!members_[m].goes_on || members_[m].pruned) continue;
    const int32_t cap = (longest - members_[m].generated) * (s_.speculation_bins ? 4 - bin[m] : 4) / 4;
    // A member written last but not the longest (it started late) gets the
    // speculation the lockstep would have given it.
    if (!specs_[m]) {
      if (cap == 0) continue;
      speculate(host, m, members_[m].stream);
    }
    Speculation& sp = *specs_[m];
    sp.cap = cap;
    if (sp.cut) {
      if ((int32_t)sp.tokens.size() < cap) {
        resume(host, sp);
      } else {
        sp.cut = false;
        sp.settled = true;
        --pending_;
      }
    }
    if (!sp.settled) {
      ids.push_back(sp.job);
      at.push_back(sp.point());
    }
    verify_ahead(host, sp);
  }
  host.stop(std::move(ids), std::move(at));
}

bool SpecGroup::on_generated(SearchHost& host, const msg::GenDone& d) {
  auto it = jobs_.find(d.job_id);
  if (it == jobs_.end()) return false;
  Speculation& sp = *specs_[it->second];
  jobs_.erase(it);
  sp.job = 0;
  if (members_[sp.member].dropped) host.drop_kv({d.job_id});
  else if (s_.drop_dead_kv) sp.done.push_back(d.job_id);
  // The GenDone holds the whole part, the prefix a resumed part started from too.
  const size_t start = sp.second ? (size_t)sp.first : 0;
  tally_->generated += (int64_t)(start + d.tokens.size()) - (int64_t)sp.tokens.size();
  sp.tokens.resize(start);
  sp.tokens.insert(sp.tokens.end(), d.tokens.begin(), d.tokens.end());
  if (!sp.second) {
    sp.first = (int32_t)d.tokens.size();
    sp.text = d.text;
    sp.finish = d.finish;
  }
  if (members_[sp.member].pruned) {
    settle_pruned(sp);
    return true;
  }
  // Without a cost bound, what is kept may not depend on when the generator
  // stopped the part to make room for real work: a part stopped short of its
  // cap (or before the cap is known) goes on from where it stopped, on its
  // stream, sampling the tokens the uninterrupted part would have.
  if (!s_.speculation_bounded && d.finish == "stopped" && (sp.cap < 0 || (int32_t)sp.tokens.size() < sp.cap)) {
    if (sp.cap < 0) {
      sp.cut = true;  // cap() resumes it
    } else {
      resume(host, sp);
      host.stop({sp.job}, {sp.point()});
    }
    return true;
  }
  if (!sp.second) {
    // Trace mode: copy 0's step is written; go on toward the longest copy's.
    int32_t more = sp.target - sp.first;
    if (sp.cap >= 0) more = std::min(more, sp.cap - sp.first);
    if (trace() && d.finish == "forced" && more > 0) {
      GenRequest g;
      g.beam = sp.stream;  // the same stream: as if the first part had gone on
      g.tokens = context(members_[sp.member].path, sp.tokens);
      g.forced_tokens = g.max_tokens = more;
      g.stop_at_delimiter = false;
      g.from_job = sp.kv_job;
      sp.second = true;
      send(host, sp, std::move(g));
      if (sp.cap >= 0) {
        host.stop({sp.job}, {more});  // capped already: it runs to its point like the first parts
        verify_ahead(host, sp);
      }
      if (at_barrier_ && s_.speculation_bounded) host.stop({sp.job}, {0});
      return true;
    }
  }
  sp.settled = true;
  --pending_;
  if (sp.cap >= 0) verify_ahead(host, sp);
  return true;
}

bool SpecGroup::on_scored(SearchHost& host, const msg::ScoreDone& d) {
  if (dead_scorings_.erase(d.job_id)) {
    host.drop_kv({d.job_id});
    return true;
  }
  auto it = scorings_.find(d.job_id);
  if (it == scorings_.end()) return false;
  Speculation& sp = *specs_[it->second];
  scorings_.erase(it);
  if (s_.drop_dead_kv) sp.done.push_back(d.job_id);
  sp.scores = d.scores;
  sp.scored = true;
  return true;
}

void SpecGroup::verify_ahead(SearchHost& host, Speculation& sp) {
  if (!sp.complete() || sp.score_job || members_[sp.member].pruned || members_[sp.member].dropped) return;
  const SearchPath& path = members_[sp.member].path;
  SearchPath next = path;
  msg::GenDone d;
  d.tokens.assign(sp.tokens.begin(), sp.tokens.begin() + sp.first), d.text = sp.text, d.finish = sp.finish;
  if (trace()) next.append_forced(d);
  else next.append(d, s_.delimiter);
  if (next.steps.size() <= path.steps.size()) return;  // no new step to score
  sp.scored_steps = next.steps;
  sp.score_job = host.score(sp.stream, next.steps);
  scorings_[sp.score_job] = sp.member;
}

void SpecGroup::prune(SearchHost& host, size_t m) {
  assert(m < members_.size() && !members_[m].pruned);
  members_[m].pruned = true;
  if (!specs_[m]) return;
  Speculation& sp = *specs_[m];
  ++tally_->pruned_early;
  if (sp.job) {  // running: it ends now, and its GenDone settles it
    ++tally_->pruned_early_stopped;
    host.stop({sp.job}, {0});
  } else if (sp.settled) {
    tally_->pruned_early_tokens += (int64_t)sp.tokens.size();
  } else {
    settle_pruned(sp);  // stopped short before the cap was known: never resumed
  }
}

void SpecGroup::drop(SearchHost& host, size_t m) {
  assert(m < members_.size());
  if (!s_.drop_dead_kv || members_[m].dropped) return;
  members_[m].dropped = true;
  if (!specs_[m]) return;
  Speculation& sp = *specs_[m];
  if (sp.score_job && !sp.scored) dead_scorings_.insert(sp.score_job);
  if (!sp.done.empty()) host.drop_kv(std::exchange(sp.done, {}));
}

void SpecGroup::settle_pruned(Speculation& sp) {
  sp.cut = false;
  sp.settled = true;
  --pending_;
  tally_->pruned_early_tokens += (int64_t)sp.tokens.size();
}

void SpecGroup::add_kv_jobs(std::unordered_set<uint64_t>* ids) const {
  // A pruned member's speculation is never carried: its sequence may go.
  for (const auto& sp : specs_)
    if (sp && sp->kv_job && !members_[sp->member].pruned) ids->insert(sp->kv_job);
}

bool SpecGroup::at_barrier(SearchHost& host) {
  at_barrier_ = true;
  if (pending_ == 0) return true;
  if (s_.speculation_bounded) end_running(host);
  return false;
}

void SpecGroup::end_running(SearchHost& host) {
  std::vector<uint64_t> ids;
  for (const auto& [job, m] : jobs_) ids.push_back(job);
  std::sort(ids.begin(), ids.end());
  host.stop(ids, std::vector<int32_t>(ids.size(), 0));
}

Carry SpecGroup::carry(size_t parent, const SearchPath& copy_path, int32_t copy, int32_t iteration) {
  Carry c;
  // A pruned member survives only where a NaN score leaves the selection's
  // sort without an order; it takes over nothing (its speculation is gone).
  if (!specs_[parent] || members_[parent].pruned) return c;
  Speculation& sp = *specs_[parent];
  const int32_t kept = sp.kept();
  if (kept == 0) return c;
  if (copy == 0) {
    c.stream = sp.stream;
    if (sp.complete()) {
      msg::GenDone d;
      d.tokens.assign(sp.tokens.begin(), sp.tokens.begin() + sp.first), d.text = sp.text, d.finish = sp.finish;
      c.step = std::move(d);
      c.score_job = sp.scored ? 0 : sp.score_job;
      c.scored_steps = sp.scored_steps, c.scores = sp.scores, c.scored = sp.scored;
    } else {
      c.prefix.assign(sp.tokens.begin(), sp.tokens.begin() + kept);
    }
  } else if (kept >= 2) {  // at least one token and at most all but one
    const uint64_t key = copy_path.lineage;
    const double u1 = std::max(sample_uniform(s_.params.seed, key, 2 * (uint64_t)iteration), 1e-300);
    const double u2 = sample_uniform(s_.params.seed, key, 2 * (uint64_t)iteration + 1);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    const double r = std::clamp(0.85 + 0.1 * z, 0.0, 1.0);
    int32_t t = std::clamp((int32_t)std::floor(r * kept), 1, kept - 1);
    if (trace()) t = std::min(t, draw(copy_path, 0).tokens - 1);
    if (t > 0) c.prefix.assign(sp.tokens.begin(), sp.tokens.begin() + t);
  }
  const int64_t used = c.step ? (int64_t)c.step->tokens.size() : (int64_t)c.prefix.size();
  if (used > 0 && s_.live_beams) c.kv_job = sp.kv_job;
  if (used > sp.taken) {
    tally_->kept += used - sp.taken;
    sp.taken = used;
  }
  return c;
}

}  // namespace flashtts
