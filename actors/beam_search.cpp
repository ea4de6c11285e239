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
// a beam whose step is written while others of the iteration still generate
// goes on into its next step as a speculative job (its own stream). When the
// last real step of the iteration is written, every speculation is capped at
// the tokens the lockstep would have given it (the longest real step's count
// less the beam's own), scaled by its parent's score bin (4 bins of the
// previous ranking: 100%, 75%, 50%, 25%); without a cost bound the generator
// runs each to its cap and the barrier waits, so what is kept does not depend
// on timing (with a bound, the barrier ends what still runs). A speculated step that ended
// within its cap is scored at once (look-ahead verification: the verifier's
// score cache and prefix cache make it an extension of the beam's last
// scoring). Ranking uses the real steps only. At selection a pruned beam's
// speculation is dropped; a survivor's copies take it over
// (DuplicateThenTruncate): copy 0 continues the speculation's own stream, so
// keeping all of it is the same as cutting it anywhere and generating again,
// and a complete step needs no generation; copy c >= 1 keeps a prefix of
// ratio r ~ N(0.85, 0.1) clipped to [0, 1], at least one token and at most
// all but one, drawn from (seed, its lineage, iteration), and continues with
// its own stream, so no two copies are the same beam. Known gap: the beam's
// KV does not live across iterations yet (each job re-admits its context).
//
// Trace mode (math-trace, actors/trace.h): every step, look-ahead steps too,
// is one forced generation of its drawn length and ends the beam when the
// draw ends it. The first beams are lineage_root(slot); a survivor's copy c
// is lineage_child(parent, c), copy 0 keeping the parent's lineage, so a
// look-ahead step has the length copy 0 then gives the real step.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "actors/answer.h"
#include "actors/search_path.h"
#include "actors/trace.h"
#include "gpu/prm_format.h"
#include "gpu/sampler.h"

namespace flashtts {

namespace {

// A speculative job's result and what may be kept of it.
// In trace mode it comes in two parts: copy 0's step (its drawn length),
// then on toward the longest step of the survivor's copies, so that every
// copy can take over most of its own step.
struct Speculation {
  uint64_t job = 0;             // the part running
  int32_t stream = 0;           // its random stream: copy 0 continues it
  bool settled = false;         // its last GenDone is back
  bool second = false;          // trace mode: the second part is (or was) running
  std::vector<int32_t> tokens;  // what it wrote, both parts
  int32_t first = 0;            // tokens of the first part (copy 0's step); 0 until it is back
  std::string text, finish;     // the first part's text and how it ended
  int32_t target = 0;           // trace mode: the longest step of the copies it serves
  int32_t cap = -1;             // tokens it may keep; -1 until the iteration's real steps are written
  uint64_t score_job = 0;       // look-ahead verification of a complete step
  std::vector<std::string> scored_steps;  // the steps that job scores
  std::vector<float> scores;
  bool scored = false;

  int32_t kept() const { return cap < 0 ? 0 : std::min((int32_t)tokens.size(), cap); }
  // Its first part ended on its own (not stopped) within its cap: a whole step.
  bool complete() const { return first > 0 && finish != "stopped" && first <= cap; }
};

// What a copy takes over from its parent's speculation (DuplicateThenTruncate).
struct Carry {
  int32_t stream = -1;                 // the stream to continue; -1: the slot's own
  std::vector<int32_t> prefix;         // a partial step: generate on after it
  std::optional<msg::GenDone> step;    // a complete step: nothing to generate
  uint64_t score_job = 0;              // its look-ahead scoring, still running
  std::vector<std::string> scored_steps;
  std::vector<float> scores;
  bool scored = false;
};

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
  bool written = false;    // this iteration's real step is written
  bool may_speculate = false;  // it goes on: its next step may be written ahead
  int32_t generated = 0;   // tokens generated for it in this iteration
  int32_t prefix = 0;      // tokens of its job's prefix
  Carry carry;
  std::optional<Speculation> spec;
};

class BeamSearch final : public SearchStrategy {
 public:
  explicit BeamSearch(SearchSetup s)
      : s_(std::move(s)), keep_(s_.params.n / s_.params.beam_width),
        speculate_(s_.speculation && s_.params.lookahead == 0) {
    slots_.resize(s_.params.n);
    for (size_t k = 0; k < slots_.size(); ++k) slots_[k].path.lineage = lineage_root((int32_t)k);
  }

  void start(SearchHost& host) override { begin_iteration(host); }

  void on_generated(SearchHost& host, const msg::GenDone& d) override {
    if (auto sp = spec_jobs_.find(d.job_id); sp != spec_jobs_.end()) {
      const size_t k = sp->second;
      spec_jobs_.erase(sp);
      return on_speculated(host, k, d);
    }
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end()) return;
    const size_t k = it->second;
    jobs_.erase(it);
    Slot& sl = slots_[k];
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
    if (auto sp = spec_scores_.find(d.job_id); sp != spec_scores_.end()) {
      Speculation* spec = sp->second;
      spec_scores_.erase(sp);
      spec->scores = d.scores;
      spec->scored = true;
      return;
    }
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end()) return;
    const size_t k = it->second;
    jobs_.erase(it);
    Slot& sl = slots_[k];
    if (sl.phase != Slot::Phase::Scoring) return;
    sl.path.take_scores(d.scores);
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
    if (speculate_) {
      msg::MapWriter sp;
      sp.put("jobs", spec_count_).put("tokens_generated", spec_generated_).put("tokens_kept", spec_kept_);
      sp.put("tokens_dropped", spec_generated_ - spec_kept_).put("steps_reused", spec_steps_reused_);
      st.put("speculation", sp);
    }
  }

 private:
  bool last_iteration() const { return iteration_ == s_.params.max_steps - 1; }
  bool trace() const { return s_.params.trace.on(); }
  // Trace mode: the draw of the step `ahead` steps past the path's last one.
  TraceDraw draw(const SearchPath& path, int32_t ahead) const {
    return trace_draw(s_.params.trace, path.lineage, (int32_t)path.steps.size() + ahead, s_.params.max_steps);
  }
  // The stream of the speculative job of `slot` in `iteration`: apart from
  // every real job's stream_id of the search.
  int32_t spec_stream(int32_t iteration, size_t slot) const {
    return s_.params.n * s_.params.max_steps + stream_id(iteration, (int32_t)slot, s_.params.n);
  }

  void begin_iteration(SearchHost& host) {
    const auto& p = s_.params;
    resolved_ = 0, written_ = 0, pending_spec_ = 0;
    ++iterations_run_;
    std::vector<size_t> reused;  // slots whose step was written ahead
    for (size_t k = 0; k < slots_.size(); ++k) {
      Slot& sl = slots_[k];
      sl.stream = sl.carry.stream >= 0 ? sl.carry.stream : stream_id(iteration_, (int32_t)k, p.n);
      sl.phase = Slot::Phase::Generating;
      if (sl.carry.step && !trace() && last_iteration()) {
        // The last iteration writes to the end: a step written ahead to the
        // delimiter is where this one goes on (the same stream continues it).
        sl.carry.prefix = std::move(sl.carry.step->tokens);
        sl.carry.step.reset();
      }
      if (sl.carry.step) {
        reused.push_back(k);
        continue;
      }
      GenRequest g;
      g.beam = sl.stream;
      g.tokens = context(sl.path, {});
      g.prefix = std::move(sl.carry.prefix);
      sl.prefix = (int32_t)g.prefix.size();
      if (trace()) {
        g.forced_tokens = g.max_tokens = draw(sl.path, 0).tokens;
        g.stop_at_delimiter = false;
      } else {
        g.max_tokens = p.max_tokens_per_step;
        g.stop_at_delimiter = !last_iteration();
      }
      jobs_[host.submit(std::move(g))] = k;
    }
    // After every job is out, so that these may speculate while the others write.
    for (size_t k : reused) {
      Slot& sl = slots_[k];
      msg::GenDone d = std::move(*sl.carry.step);
      sl.carry.step.reset();
      ++spec_steps_reused_;
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
    if (trace()) {
      sl.ended = last_iteration() || forced_step_ends_beam(d, draw(sl.path, 0).ends);
      sl.path.append_forced(d);
    } else {
      sl.path.append(d, s_.delimiter);
      sl.ended = last_iteration() || step_ends_beam(d, sl.path, s_.params.answer_marker);
    }
    sl.written = true;
    sl.generated = generated;
    ++written_;
    msg::MapWriter ev;
    ev.put("kind", "generated").put("beam", sl.stream).put("iteration", iteration_ + 1);
    ev.put("tokens", (int32_t)d.tokens.size()).put("finish", d.finish);
    host.progress(ev);
    sl.may_speculate = speculate_ && !sl.ended && !last_iteration();
    if (sl.may_speculate && written_ < slots_.size()) speculate(host, k);
    if (written_ == slots_.size()) cap_speculation(host);
    if (!sl.ended && s_.params.lookahead > 0) return look_ahead(host, k);
    if (sl.carry.scored && sl.carry.scored_steps == sl.path.steps) {
      sl.path.take_scores(sl.carry.scores);  // look-ahead verification scored it already
      return resolve(host, k);
    }
    if (sl.carry.score_job && sl.carry.scored_steps == sl.path.steps) {
      sl.phase = Slot::Phase::Scoring;  // its look-ahead scoring is still running
      jobs_[sl.carry.score_job] = k;
      return;
    }
    score(host, k);
  }

  // Slot k's next step, written ahead at the lowest priority.
  void speculate(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    GenRequest g;
    g.beam = spec_stream(iteration_, k);
    g.tokens = context(sl.path, {});
    g.speculative = true;
    if (trace()) {
      g.forced_tokens = g.max_tokens = draw(sl.path, 0).tokens;
      g.stop_at_delimiter = false;
    } else {
      g.max_tokens = s_.params.max_tokens_per_step;
    }
    sl.spec.emplace();
    sl.spec->stream = g.beam;
    if (trace()) {
      // The copies' steps: copy c of this beam has lineage_child(lineage, c).
      SearchPath copy = sl.path;
      for (int32_t c = 0; c < s_.params.n / (int32_t)keep_; ++c) {
        copy.lineage = lineage_child(sl.path.lineage, c);
        sl.spec->target = std::max(sl.spec->target, draw(copy, 0).tokens);
      }
    }
    sl.spec->job = host.submit(std::move(g));
    spec_jobs_[sl.spec->job] = k;
    ++pending_spec_;
    ++spec_count_;
  }

  // Every real step of the iteration is written: each speculation may keep
  // what the lockstep would have given it, scaled by its score bin.
  void cap_speculation(SearchHost& host) {
    int32_t longest = 0;
    for (const Slot& sl : slots_) longest = std::max(longest, sl.generated);
    // Score bins by the parents' ranks (all equal in the first iteration).
    std::vector<size_t> order(slots_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return slots_[a].prior > slots_[b].prior; });
    // A slot's bin counts the slots ranked strictly above it, so copies of
    // one parent share a bin.
    std::vector<int32_t> bin(slots_.size(), 0);
    for (size_t i = 0, first = 0; i < order.size(); ++i) {
      if (slots_[order[i]].prior != slots_[order[first]].prior) first = i;
      bin[order[i]] = (int32_t)(4 * first / order.size());
    }
    std::vector<uint64_t> ids;
    std::vector<int32_t> at;
    for (size_t k = 0; k < slots_.size(); ++k) {
      Slot& sl = slots_[k];
      if (!sl.may_speculate) continue;
      const int32_t cap = (int32_t)((longest - sl.generated) * (4 - bin[k]) / 4);
      // A beam that was written last but is not the longest (it started
      // late) gets the speculation the lockstep would have given it.
      if (!sl.spec) {
        if (cap == 0) continue;
        speculate(host, k);
      }
      Speculation& sp = *sl.spec;
      sp.cap = cap;
      if (!sp.settled) {
        ids.push_back(sp.job);
        at.push_back(sp.second ? std::max(0, cap - sp.first) : cap);
      }
      verify_ahead(host, k);
    }
    host.stop(std::move(ids), std::move(at));
  }

  void on_speculated(SearchHost& host, size_t k, const msg::GenDone& d) {
    Slot& sl = slots_[k];
    Speculation& sp = *sl.spec;
    sp.job = 0;
    sp.tokens.insert(sp.tokens.end(), d.tokens.begin(), d.tokens.end());
    spec_generated_ += (int64_t)d.tokens.size();
    if (!sp.second) {
      sp.first = (int32_t)d.tokens.size();
      sp.text = d.text;
      sp.finish = d.finish;
      // Trace mode: copy 0's step is written; go on toward the longest copy's.
      int32_t more = sp.target - sp.first;
      if (sp.cap >= 0) more = std::min(more, sp.cap - sp.first);
      if (trace() && d.finish == "forced" && more > 0) {
        GenRequest g;
        g.beam = sp.stream;  // the same stream: as if the first part had gone on
        g.tokens = context(sl.path, sp.tokens);
        g.forced_tokens = g.max_tokens = more;
        g.stop_at_delimiter = false;
        g.speculative = true;
        sp.second = true;
        sp.job = host.submit(std::move(g));
        spec_jobs_[sp.job] = k;
        // Capped already: it runs to its point like the first parts did (and
        // at the barrier ends at once, with a cost bound).
        if (sp.cap >= 0) host.stop({sp.job}, {more});
        if (s_.speculation_bounded && resolved_ == slots_.size()) end_speculation(host);
        if (sp.cap >= 0) verify_ahead(host, k);
        return;
      }
    }
    sp.settled = true;
    --pending_spec_;
    if (sp.cap >= 0) verify_ahead(host, k);
    if (resolved_ == slots_.size() && pending_spec_ == 0) select(host);
  }

  // Look-ahead verification: a speculated step that is whole within its cap
  // is scored now, after the beam's real steps.
  void verify_ahead(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    Speculation& sp = *sl.spec;
    if (!sp.complete() || sp.score_job) return;
    SearchPath next = sl.path;
    msg::GenDone d;
    d.tokens.assign(sp.tokens.begin(), sp.tokens.begin() + sp.first), d.text = sp.text, d.finish = sp.finish;
    if (trace()) next.append_forced(d);
    else next.append(d, s_.delimiter);
    if (next.steps.size() <= sl.path.steps.size()) return;  // no new step to score
    sp.scored_steps = next.steps;
    sp.score_job = host.score(sp.stream, next.steps);
    spec_scores_[sp.score_job] = &sp;
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
    jobs_[host.score(sl.stream, std::move(steps))] = k;
  }

  // Ranked by the real steps' scores only (take_scores keeps those).
  void resolve(SearchHost& host, size_t k) {
    Slot& sl = slots_[k];
    sl.phase = Slot::Phase::Resolved;
    sl.rank = aggregate_scores(sl.path.step_scores, s_.params.aggregation);
    sl.done_ms = host.elapsed_ms();
    if (++resolved_ < slots_.size()) return;
    if (pending_spec_ == 0) return select(host);
    if (s_.speculation_bounded) end_speculation(host);
  }

  // The barrier, with a cost bound: what the generator held back would make
  // the search wait; every speculation still running ends now.
  void end_speculation(SearchHost& host) {
    std::vector<uint64_t> ids;
    for (const Slot& sl : slots_)
      if (sl.spec && !sl.spec->settled && sl.spec->job) ids.push_back(sl.spec->job);
    host.stop(ids, std::vector<int32_t>(ids.size(), 0));
  }

  // Copy c of a survivor takes over its speculation (see the file comment).
  Carry carry_of(const Slot& parent, const SearchPath& copy_path, int32_t copy) {
    Carry c;
    if (!parent.spec) return c;
    const Speculation& sp = *parent.spec;
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
      return c;
    }
    if (kept < 2) return c;  // at least one token and at most all but one
    const uint64_t key = copy_path.lineage;
    const double u1 = std::max(sample_uniform(s_.params.seed, key, 2 * (uint64_t)iteration_), 1e-300);
    const double u2 = sample_uniform(s_.params.seed, key, 2 * (uint64_t)iteration_ + 1);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    const double r = std::clamp(0.85 + 0.1 * z, 0.0, 1.0);
    int32_t t = std::clamp((int32_t)std::floor(r * kept), 1, kept - 1);
    if (trace()) t = std::min(t, draw(copy_path, 0).tokens - 1);
    if (t > 0) c.prefix.assign(sp.tokens.begin(), sp.tokens.begin() + t);
    return c;
  }

  void select(SearchHost& host) {
    const auto& p = s_.params;
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
      next[j].carry = carry_of(parent, next[j].path, copy);
    }
    // Kept: the most of a survivor's speculation that one of its copies took.
    std::vector<int64_t> taken(slots_.size(), 0);
    for (size_t j = 0; j < next.size(); ++j) {
      const Carry& c = next[j].carry;
      const int64_t used = c.step ? (int64_t)c.step->tokens.size() : (int64_t)c.prefix.size();
      int64_t& t = taken[active[j % active.size()]];
      t = std::max(t, used);
    }
    for (int64_t t : taken) spec_kept_ += t;
    // Verification still running: a copy 0 waits for it by job id; the
    // pruned beams' results are ignored.
    spec_scores_.clear();
    slots_ = std::move(next);
    begin_iteration(host);
  }

  SearchSetup s_;
  size_t keep_;
  bool speculate_;
  std::vector<Slot> slots_;
  std::unordered_map<uint64_t, size_t> jobs_;       // job id -> slot
  std::unordered_map<uint64_t, size_t> spec_jobs_;  // speculative job id -> slot
  std::unordered_map<uint64_t, Speculation*> spec_scores_;  // look-ahead scoring job -> its speculation
  std::vector<Completion> completed_;          // set aside, in order
  size_t resolved_ = 0, written_ = 0, pending_spec_ = 0;
  int32_t iteration_ = 0;  // 0-based index of the iteration in flight
  int32_t iterations_run_ = 0;
  int64_t spec_count_ = 0, spec_generated_ = 0, spec_kept_ = 0, spec_steps_reused_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_beam_search(const SearchSetup& setup) {
  return std::make_unique<BeamSearch>(setup);
}

}  // namespace flashtts
