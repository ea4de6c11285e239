// Beam search over reasoning steps with the PRM in the loop, as Hugging Face
// search-and-learn runs it (src/sal/search/beam_search.py):
//
//   every iteration the n beams in flight each generate ONE step (up to the
//   delimiter; the last iteration to the end); the PRM scores each beam's
//   steps; a beam whose step ended it is set aside as completed; of the rest
//   (duplicates dropped when asked) the n / beam_width best by aggregated
//   score survive and are repeated, in their order, back to n beams.
//
// Differences from the reference, on purpose:
//  - generation continues from the beam's own token ids (no re-templating of
//    text), so a fork costs only its partial last KV block;
//  - every slot of an iteration has its own random stream (stream_id), so
//    copies of a beam diverge and the search is a pure function of the seed;
//  - look-ahead steps are scored with the real ones (the reference generates
//    them but scores only the real text); the ranking, as the reference's,
//    uses the real steps' scores only, and the kept beam keeps only its real
//    step and that step's own scores;
//  - an empty trailing step is never scored (split_steps drops it).
// Within an iteration the slots are independent: a step is scored as soon as
// it is generated; only the selection waits for all n.
//
// Speculative beam extension (SearchSetup::speculation, not with look-ahead):
// the iteration's n beams are one SpecGroup (actors/speculation.h); the
// survivors' copies take over their speculation. With
// SearchSetup::speculation_prune a beam's speculation is dropped as soon as
// the beam is certain to be pruned: keep_ resolved, non-ended beams rank
// above it (prune_beaten()).
//
// Live beams (SearchSetup::live_beams): every step's generation and scoring
// keeps its sequence in the engine; a copy's next jobs fork its parent's (or
// the speculation it takes over), and at each iteration's start the
// sequences no beam refers to any more (pruned, completed, copied) are
// released.
//
// Dead branches first (SearchSetup::drop_dead_kv): a beam's jobs of this
// iteration (its step, look-ahead and scoring) are named in drop_kv as soon
// as nothing can continue the beam: when it is set aside (its step ended
// it), when keep_ others rank above it (the early prune's certainty, with or
// without speculation), or at the selection; its speculation's jobs too
// (SpecGroup::drop).
//
// Trace mode (math-trace, actors/trace.h): every step, look-ahead steps too,
// is one forced generation of its drawn length and ends the beam when the
// draw ends it. The first beams are lineage_root(slot); a survivor's copy c
// is lineage_child(parent, c), copy 0 keeping the parent's lineage, so a
// look-ahead step has the length copy 0 then gives the real step.
#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "actors/answer.h"
#include "actors/search_path.h"
#include "actors/speculation.h"
#include "actors/trace.h"
#include "gpu/prm_format.h"

namespace flashtts {

namespace {

// One of the n beams in flight this iteration.
struct Slot {
  enum class Phase { Generating, LookingAhead, Scoring, Resolved };
  Phase phase = Phase::Generating;
  int32_t stream = 0;  // the beam id of its jobs
  SearchPath path;     // the parent's path, then with this iteration's step
  bool ended = false;  // the step ended the beam: it will be set aside
  // Greedy steps past the real one: scored with it, never kept.
  std::vector<int32_t> ahead_tokens;
  std::string ahead_text;
  std::vector<std::string> ahead_forced;  // trace mode: each look-ahead step's text
  int32_t ahead_steps = 0;
  float rank = 0;      // aggregated score of the real steps
  float prior = 0;     // the parent's rank (the speculation's score bin)
  double done_ms = 0;
  int32_t prefix = 0;  // tokens of its job's prefix
  Carry carry;         // what it takes over from its parent's speculation
  // Live beams: the jobs whose kept sequences hold its path (policy) and its
  // scored steps (PRM), and its scoring job while it runs.
  uint64_t gen_kv = 0, score_kv = 0, scoring = 0;
  // Dead branches first: this iteration's finished jobs that wrote its KV,
  // and whether drop_kv has named them.
  std::vector<uint64_t> own_jobs;
  bool dropped = false;
};

class BeamSearch final : public SearchStrategy {
 public:
  explicit BeamSearch(SearchSetup s)
      : s_(std::move(s)), keep_(s_.params.n / s_.params.beam_width),
        speculate_(s_.speculation && s_.params.lookahead == 0),
        prune_(speculate_ && s_.speculation_prune && !s_.params.filter_duplicates),
        drop_(s_.drop_dead_kv), drop_early_(drop_ && !s_.params.filter_duplicates),
        spec_(s_, s_.params.n / (int32_t)keep_, &tally_) {
    slots_.resize(s_.params.n);
    for (size_t k = 0; k < slots_.size(); ++k) slots_[k].path.lineage = lineage_root((int32_t)k);
  }

  void start(SearchHost& host) override { begin_iteration(host); }

  void on_generated(SearchHost& host, const msg::GenDone& d) override {
    if (spec_.on_generated(host, d)) {
      if (resolved_ == slots_.size() && spec_.settled()) select(host);
      return;
    }
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end()) return;
    const size_t k = it->second;
    jobs_.erase(it);
    Slot& sl = slots_[k];
    if (drop_) sl.own_jobs.push_back(d.job_id);
    if (sl.phase == Slot::Phase::Generating) {
      return on_written(host, k, d, (int32_t)d.tokens.size() - sl.prefix);
    } else if (sl.phase == Slot::Phase::LookingAhead) {
      sl.ahead_tokens.insert(sl.ahead_tokens.end(), d.tokens.begin(), d.tokens.end());
      sl.ahead_text += d.text;
      ++sl.ahead_steps;
      if (trace()) {
        sl.ahead_forced.push_back(d.text);
        const bool ended = forced_step_ends_beam(d, draw(sl.path, sl.ahead_steps - 1).ends);
        if (!ended && sl.ahead_steps < s_.params.lookahead) return look_ahead(host, k);
        return score(host, k);
      }
      // As generate_k_steps: only a look-ahead that stopped at the delimiter goes on.
      if (d.finish == "delimiter" && !d.text.empty() && sl.ahead_steps < s_.params.lookahead)
        return look_ahead(host, k);
      score(host, k);
    }
  }

  void on_scored(SearchHost& host, const msg::ScoreDone& d) override {
    if (spec_.on_scored(host, d)) return;
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end()) return;
    const size_t k = it->second;
    jobs_.erase(it);
    Slot& sl = slots_[k];
    if (drop_) sl.own_jobs.push_back(d.job_id);
    if (sl.phase != Slot::Phase::Scoring) return;
    if (d.job_id == sl.scoring) sl.score_kv = d.job_id;
    sl.path.take_scores(d.scores, &s_.params.trace, s_.params.max_steps);
    resolve(host, k);
  }

  bool finished() const override { return finished_; }

  std::vector<Completion> completions() const override {
    std::vector<Completion> out = completed_;
    if (s_.params.sort_completed) {
      std::stable_sort(out.begin(), out.end(), [&](const Completion& a, const Completion& b) {
        return aggregate_scores(a.step_scores, s_.params.aggregation) >
               aggregate_scores(b.step_scores, s_.params.aggregation);
      });
    }
    // The reference returns n: the first n set aside, or the n best.
    if ((int32_t)out.size() > s_.params.n) out.resize(s_.params.n);
    return out;
  }

  void add_stats(msg::MapWriter& st) const override {
    st.put("iterations", iterations_run_).put("beams_completed", (int32_t)completed_.size());
    st.put("straggler_chain_tokens", chain_tokens_);
    if (speculate_) tally_.add_stats(st);
  }

 private:
  bool last_iteration() const { return iteration_ == s_.params.max_steps - 1; }
  bool trace() const { return s_.params.trace.on(); }
  // Trace mode: the draw of the step `ahead` steps past the path's last one.
  TraceDraw draw(const SearchPath& path, int32_t ahead) const {
    return trace_draw(s_.params.trace, path.lineage, (int32_t)path.steps.size() + ahead, s_.params.max_steps);
  }

  void begin_iteration(SearchHost& host) {
    const auto& p = s_.params;
    resolved_ = 0;
    longest_ = 0;
    ranked_.clear();
    spec_.begin(slots_.size());
    ++iterations_run_;
    std::vector<size_t> reused;  // slots whose step was written ahead
    for (size_t k = 0; k < slots_.size(); ++k) {
      Slot& sl = slots_[k];
      sl.stream = sl.carry.stream >= 0 ? sl.carry.stream : stream_id(iteration_, (int32_t)k, p.n);
      sl.phase = Slot::Phase::Generating;
      std::optional<GenRequest> g = step_job(s_, sl.path, sl.carry, sl.stream, last_iteration());
      if (!g) {
        reused.push_back(k);
        continue;
      }
      g->keep_kv = s_.live_beams && !last_iteration();  // nothing continues the last
      g->from_job = sl.gen_kv;
      sl.prefix = (int32_t)g->prefix.size();
      jobs_[host.submit(std::move(*g))] = k;
    }
    if (s_.live_beams) {  // after the jobs that fork them
      std::unordered_set<uint64_t> referenced;
      for (const Slot& sl : slots_) referenced.insert({sl.gen_kv, sl.score_kv});
      host.keep_kv_only(referenced);
    }
    // After every job is out, so that these may speculate while the others write.
    for (size_t k : reused) {
      Slot& sl = slots_[k];
      msg::GenDone d = std::move(*sl.carry.step);
      sl.carry.step.reset();
      ++tally_.steps_reused;
      on_written(host, k, d, 0);
    }
  }

  std::vector<int32_t> context(const SearchPath& path, const std::vector<int32_t>& ahead) const {
    std::vector<int32_t> c;
    c.reserve(s_.prompt.size() + path.tokens.size() + ahead.size());
    c.insert(c.end(), s_.prompt.begin(), s_.prompt.end());
    c.insert(c.end(), path.tokens.begin(), path.tokens.end());
    c.insert(c.end(), ahead.begin(), ahead.end());
    return c;
  }

  // The slot's real step of this iteration is written (`generated` of its
  // tokens in this iteration): append it, speculate, then score it.
  void on_written(SearchHost& host, size_t k, const msg::GenDone& d, int32_t generated) {
    Slot& sl = slots_[k];
    longest_ = std::max(longest_, generated);
    if (trace()) {
      sl.ended = last_iteration() || forced_step_ends_beam(d, draw(sl.path, 0).ends);
      sl.path.append_forced(d);
    } else {
      sl.path.append(d, s_.delimiter);
      sl.ended = last_iteration() || step_ends_beam(d, sl.path, s_.params.answer_marker);
    }
    if (s_.live_beams && d.job_id != 0) sl.gen_kv = d.job_id;  // (a carried step keeps the carry's)
    msg::MapWriter ev;
    ev.put("kind", "generated").put("beam", sl.stream).put("iteration", iteration_ + 1);
    ev.put("tokens", (int32_t)d.tokens.size()).put("finish", d.finish);
    host.progress(ev);
    spec_.written(host, k, sl.path, generated, speculate_ && !sl.ended && !last_iteration(),
                  speculative_stream(s_.params, stream_id(iteration_, (int32_t)k, s_.params.n)), sl.prior, sl.gen_kv);
    if (!sl.ended && s_.params.lookahead > 0) return look_ahead(host, k);
    switch (take_verified(s_, sl.carry, sl.path)) {
      case Verified::kScored:
        return resolve(host, k);
      case Verified::kRunning:
        sl.phase = Slot::Phase::Scoring;
        jobs_[sl.carry.score_job] = k;
        return;
      case Verified::kNo:
        return score(host, k);
    }
  }

  void look_ahead(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    sl.phase = Slot::Phase::LookingAhead;
    if (trace()) {
      jobs_[host.generate_forced(sl.stream, context(sl.path, sl.ahead_tokens), draw(sl.path, sl.ahead_steps).tokens,
                                 /*greedy=*/true)] = k;
      return;
    }
    jobs_[host.generate(sl.stream, context(sl.path, sl.ahead_tokens), s_.params.max_tokens_per_step, true,
                        /*greedy=*/true)] = k;
  }

  // Scores the beam's steps (and its look-ahead steps after them); a beam
  // whose steps did not change keeps the scores it has.
  void score(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    std::vector<std::string> steps = sl.path.steps;
    // Look-ahead steps follow the real ones as steps of their own, so the
    // real steps' scores are the first ones (the PRM is causal).
    for (std::string& a : trace() ? sl.ahead_forced : split_steps(sl.ahead_text, s_.delimiter))
      steps.push_back(std::move(a));
    if (steps.size() == sl.path.steps.size() && sl.path.scored()) return resolve(host, k);
    sl.phase = Slot::Phase::Scoring;
    const uint64_t id = host.submit_score({sl.stream, std::move(steps), s_.live_beams && !last_iteration(), sl.score_kv,
                                           beam_priority(sl.path, s_.params.aggregation)});
    if (s_.live_beams) sl.scoring = id;
    jobs_[id] = k;
  }

  // Ranked by the real steps' scores only (take_scores keeps those).
  void resolve(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    sl.phase = Slot::Phase::Resolved;
    sl.rank = aggregate_scores(sl.path.step_scores, s_.params.aggregation);
    sl.done_ms = host.elapsed_ms();
    // (The last iteration does not speculate, and nothing is left to protect.)
    if (!last_iteration()) {
      if (sl.ended) drop(host, k);
      if (prune_ || drop_early_) prune_beaten(host, k);
    }
    if (++resolved_ == slots_.size() && spec_.at_barrier(host)) select(host);
  }

  // select()'s order of the non-ended beams: by rank, ties to the earlier slot.
  bool ranks_before(size_t a, size_t b) const {
    return slots_[a].rank > slots_[b].rank || (slots_[a].rank == slots_[b].rank && a < b);
  }

  // Slot k is resolved. A resolved, non-ended slot with keep_ others of them
  // before it is pruned at the selection whatever the rest score (a slot
  // resolved later only pushes it further down): its speculation is dropped
  // now. Each resolve moves at most one slot past the keep_ first. Not with
  // filter_duplicates (prune_ is off): a duplicate dropped at the selection
  // frees a place for a beam ranked below keep_ others. A NaN rank orders
  // nothing, so it is left out.
  void prune_beaten(SearchHost& host, size_t k) {
    const Slot& sl = slots_[k];
    if (sl.ended || std::isnan(sl.rank)) return;
    auto at = std::lower_bound(ranked_.begin(), ranked_.end(), k,
                               [&](size_t a, size_t b) { return ranks_before(a, b); });
    const size_t place = (size_t)(at - ranked_.begin());
    ranked_.insert(at, k);
    if (place >= keep_) beaten(host, k);
    else if (ranked_.size() > keep_) beaten(host, ranked_[keep_]);
  }

  // Slot k is certain to be pruned.
  void beaten(SearchHost& host, size_t k) {
    if (prune_) spec_.prune(host, k);
    if (drop_early_) drop(host, k);
  }

  // Nothing continues slot k's beam: its jobs' KV may go.
  void drop(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    if (!drop_ || sl.dropped) return;
    sl.dropped = true;
    host.drop_kv(sl.own_jobs);
    spec_.drop(host, k);
  }

  void select(SearchHost& host) {
    const auto& p = s_.params;
    chain_tokens_ += longest_;
    std::vector<size_t> active;
    for (size_t k = 0; k < slots_.size(); ++k) {
      Slot& sl = slots_[k];
      if (!sl.ended) {
        active.push_back(k);
        continue;
      }
      completed_.push_back(sl.path.completion(sl.stream, sl.done_ms));
      msg::MapWriter ev;
      ev.put("kind", "completed").put("beam", sl.stream).put("done", (int32_t)completed_.size()).put("total", p.n);
      ev.put("step_scores", sl.path.step_scores);
      host.progress(ev);
    }
    if (p.filter_duplicates) {
      std::unordered_set<std::string> seen;
      std::erase_if(active, [&](size_t k) { return !seen.insert(slots_[k].path.text).second; });
    }
    // The keep_ best; ties go to the earlier slot. Survivors then stay in slot
    // order, as the reference's pruned flags leave them.
    std::stable_sort(active.begin(), active.end(), [&](size_t a, size_t b) { return slots_[a].rank > slots_[b].rank; });
    if (active.size() > keep_) active.resize(keep_);
    std::sort(active.begin(), active.end());

    ++iteration_;
    msg::MapWriter ev;
    ev.put("kind", "iteration").put("iteration", iteration_).put("active", (int32_t)active.size());
    ev.put("completed", (int32_t)completed_.size());
    if (!active.empty()) ev.put("best_score", slots_[active.front()].rank);
    host.progress(ev);
    if (active.empty() || iteration_ >= p.max_steps) {
      finished_ = true;
      return;
    }
    if (drop_) {
      std::vector<char> kept(slots_.size(), 0);
      for (size_t k : active) kept[k] = 1;
      for (size_t k = 0; k < slots_.size(); ++k)
        if (!kept[k]) drop(host, k);
    }
    // Back to n beams in flight: the survivors repeated in order (each
    // beam_width times when all keep_ survive). Pruned beams' speculation is
    // dropped here; a survivor's is taken over by its copies.
    std::vector<Slot> next(p.n);
    for (size_t j = 0; j < next.size(); ++j) {
      const Slot& parent = slots_[active[j % active.size()]];
      const int32_t copy = (int32_t)(j / active.size());
      next[j].path = parent.path;
      next[j].path.lineage = lineage_child(parent.path.lineage, copy);
      next[j].prior = parent.rank;
      next[j].carry = spec_.carry(active[j % active.size()], next[j].path, copy, iteration_);
      next[j].gen_kv = next[j].carry.kv_job ? next[j].carry.kv_job : parent.gen_kv;
      next[j].score_kv = parent.score_kv;
    }
    slots_ = std::move(next);
    begin_iteration(host);
  }

  SearchSetup s_;
  size_t keep_;
  bool speculate_;
  bool prune_;  // speculation_prune, where select() makes certainty simple
  bool drop_;        // drop_dead_kv
  bool drop_early_;  // drop_dead_kv before the selection, where prune_beaten() is certain
  std::vector<Slot> slots_;
  std::vector<size_t> ranked_;  // this iteration's resolved, non-ended slots, in select()'s order
  SpecTally tally_;
  SpecGroup spec_;
  std::unordered_map<uint64_t, size_t> jobs_;  // job id -> slot
  std::vector<Completion> completed_;          // set aside, in order
  size_t resolved_ = 0;
  int32_t iteration_ = 0;  // 0-based index of the iteration in flight
  int32_t iterations_run_ = 0;
  // The straggler chain: the most tokens a beam generated in this iteration,
  // and their sum over the iterations so far (decode passes the lockstep
  // cannot shorten; what speculation cuts, tools/lockstep_model.py).
  int32_t longest_ = 0;
  int64_t chain_tokens_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_beam_search(const SearchSetup& setup) {
  return std::make_unique<BeamSearch>(setup);
}

}  // namespace flashtts
