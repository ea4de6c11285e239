// Diverse verifier tree search, as Hugging Face search-and-learn runs it
// (src/sal/search/diverse_verifier_tree_search.py): n / beam_width subtrees
// grow independently. Each iteration a subtree samples beam_width candidate
// next steps from its path (up to the delimiter; the last iteration to the
// end), the PRM scores each candidate path, and the subtree keeps the best
// (ties: the first). A kept step that ends the beam (EOS, the token limit, an
// empty step, the answer marker) completes the subtree. Like the reference,
// each subtree yields its last iteration's beam_width candidates (its kept
// path and the siblings it was chosen over), so the result has n completions.
//
// Subtrees never interact, so each one moves to its next iteration as soon as
// its own candidates are scored; its choices depend only on its own random
// streams (stream_id of its candidates) and scores, never on timing.
//
// Speculative beam extension (SearchSetup::speculation): each subtree's
// candidates are one SpecGroup (actors/speculation.h) per iteration; the kept
// candidate's speculation is taken over by the next iteration's candidates
// (candidate 0 continues it, the others keep a random prefix). With
// SearchSetup::speculation_prune a candidate's speculation is dropped as soon
// as another resolved candidate of its subtree beats it (prune_beaten()): a
// subtree keeps one, so that one is enough.
//
// Live beams (SearchSetup::live_beams): candidates fork the kept candidate's
// sequences (or the speculation they take over); when a subtree starts an
// iteration, the kept sequences no subtree refers to any more are released.
//
// Dead branches first (SearchSetup::drop_dead_kv): a candidate's jobs (its
// step and its scoring) are named in drop_kv once it cannot be kept: when
// another resolved candidate of its subtree beats it, or when the subtree
// keeps another (or ends, and then its kept one too).
//
// Trace mode (math-trace, actors/trace.h): every candidate step is one forced
// generation of its drawn length and ends the subtree when the draw ends it.
// Subtree t starts as lineage_root(t); candidate j is lineage_child(path, j),
// and the kept candidate's lineage becomes the subtree's.
#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "actors/answer.h"
#include "actors/search_path.h"
#include "actors/speculation.h"
#include "actors/trace.h"

namespace flashtts {

namespace {

struct Candidate {
  int32_t stream = 0;
  SearchPath path;  // the subtree's path with this candidate's step
  bool ended = false;
  bool drawn_end = false;  // trace mode: the draw ends the solution after this step
  float score = 0;  // aggregated
  int32_t prefix = 0;  // tokens of its job's prefix
  Carry carry;         // what it takes over from the kept candidate's speculation
  // Live beams: the jobs whose kept sequences hold its path (policy) and its
  // scored steps (PRM), and its scoring job while it runs.
  uint64_t gen_kv = 0, score_kv = 0, scoring = 0;
  // Dead branches first: its finished jobs, and whether drop_kv named them.
  std::vector<uint64_t> own_jobs;
  bool dropped = false;
};

struct Subtree {
  SearchPath path;  // the kept steps
  int32_t iteration = 0;  // 0-based index of the iteration in flight
  std::vector<Candidate> cands;
  int32_t resolved = 0;
  bool done = false;
  double done_ms = 0;
  std::unique_ptr<SpecGroup> spec;  // this iteration's candidates' speculation
  bool waiting = false;             // every candidate resolved; waiting for speculation to end
  int32_t leader = -1;              // speculation_prune: the best resolved candidate so far (-1: none)
  uint64_t gen_kv = 0, score_kv = 0;  // live beams: the kept candidate's
};

class Dvts final : public SearchStrategy {
 public:
  explicit Dvts(SearchSetup s)
      : s_(std::move(s)), width_(s_.params.beam_width), speculate_(s_.speculation),
        prune_(speculate_ && s_.speculation_prune), drop_(s_.drop_dead_kv) {
    trees_.resize(s_.params.n / width_);
    for (size_t t = 0; t < trees_.size(); ++t) {
      trees_[t].path.lineage = lineage_root((int32_t)t);
      trees_[t].spec = std::make_unique<SpecGroup>(s_, width_, &tally_);
    }
  }

  void start(SearchHost& host) override {
    for (size_t t = 0; t < trees_.size(); ++t) expand(host, t, {});
  }

  void on_generated(SearchHost& host, const msg::GenDone& d) override {
    for (size_t t = 0; t < trees_.size(); ++t) {
      Subtree& tree = trees_[t];
      if (tree.done || !tree.spec->on_generated(host, d)) continue;
      if (tree.waiting && tree.spec->settled()) advance(host, t);
      return;
    }
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end()) return;
    auto [t, j] = it->second;
    jobs_.erase(it);
    if (drop_) trees_[t].cands[j].own_jobs.push_back(d.job_id);
    written(host, t, j, d, (int32_t)d.tokens.size() - trees_[t].cands[j].prefix);
  }

  void on_scored(SearchHost& host, const msg::ScoreDone& d) override {
    // (A done subtree's group still names its dropped look-ahead scorings.)
    for (Subtree& tree : trees_)
      if (tree.spec->on_scored(host, d)) return;
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end()) return;
    auto [t, j] = it->second;
    jobs_.erase(it);
    Candidate& c = trees_[t].cands[j];
    if (drop_) c.own_jobs.push_back(d.job_id);
    if (d.job_id == c.scoring) c.score_kv = d.job_id;
    c.path.take_scores(d.scores, &s_.params.trace, s_.params.max_steps);
    resolve(host, t, j);
  }

  bool finished() const override { return done_ == trees_.size(); }

  std::vector<Completion> completions() const override {
    std::vector<Completion> out;
    for (const Subtree& tree : trees_)
      for (const Candidate& c : tree.cands) out.push_back(c.path.completion(c.stream, tree.done_ms));
    return out;
  }

  void add_stats(msg::MapWriter& st) const override {
    int32_t most = 0;
    for (const Subtree& tree : trees_) most = std::max(most, tree.iteration);
    st.put("iterations", most).put("subtrees", (int32_t)trees_.size());
    if (speculate_) tally_.add_stats(st);
  }

 private:
  bool last_iteration(const Subtree& tree) const { return tree.iteration == s_.params.max_steps - 1; }

  // Candidate j of subtree t has its step (`generated` of its tokens written
  // in this iteration): append it, speculate, score it.
  void written(SearchHost& host, size_t t, size_t j, const msg::GenDone& d, int32_t generated) {
    Subtree& tree = trees_[t];
    Candidate& c = tree.cands[j];
    if (s_.params.trace.on()) {
      c.path.append_forced(d);
      c.ended = last_iteration(tree) || forced_step_ends_beam(d, c.drawn_end);
    } else {
      c.path.append(d, s_.delimiter);
      c.ended = last_iteration(tree) || step_ends_beam(d, c.path, s_.params.answer_marker);
    }
    msg::MapWriter ev;
    ev.put("kind", "generated").put("beam", c.stream).put("subtree", (int32_t)t);
    ev.put("iteration", tree.iteration + 1).put("tokens", (int32_t)d.tokens.size()).put("finish", d.finish);
    host.progress(ev);
    if (s_.live_beams && d.job_id != 0) c.gen_kv = d.job_id;  // (a carried step keeps the carry's)
    const int32_t stream = stream_id(tree.iteration, (int32_t)(t * width_ + j), s_.params.n);
    tree.spec->written(host, j, c.path, generated, speculate_ && !c.ended && !last_iteration(tree),
                       speculative_stream(s_.params, stream), 0, c.gen_kv);
    switch (take_verified(s_, c.carry, c.path)) {
      case Verified::kScored:
        return resolve(host, t, j);
      case Verified::kRunning:
        jobs_[c.carry.score_job] = {t, j};
        return;
      case Verified::kNo:
        break;
    }
    // A step that adds no step keeps the path's scores (an empty trailing
    // step is never scored).
    if (c.path.scored()) return resolve(host, t, j);
    const uint64_t id = host.submit_score({c.stream, c.path.steps, s_.live_beams && !last_iteration(tree), tree.score_kv,
                                           beam_priority(c.path, s_.params.aggregation)});
    if (s_.live_beams) c.scoring = id;
    jobs_[id] = {t, j};
  }

  // The subtree's next candidates, each with what it takes over from the
  // kept candidate's speculation (`carries`; empty: none).
  void expand(SearchHost& host, size_t t, std::vector<Carry> carries) {
    const auto& p = s_.params;
    Subtree& tree = trees_[t];
    tree.resolved = 0;
    tree.waiting = false;
    tree.leader = -1;
    tree.cands.assign(width_, Candidate{});
    tree.spec->begin(width_);
    std::vector<size_t> reused;  // candidates whose step was written ahead
    for (int32_t j = 0; j < width_; ++j) {
      Candidate& c = tree.cands[j];
      if (!carries.empty()) c.carry = std::move(carries[j]);
      c.gen_kv = c.carry.kv_job ? c.carry.kv_job : tree.gen_kv;
      c.score_kv = tree.score_kv;
      c.stream = c.carry.stream >= 0 ? c.carry.stream : stream_id(tree.iteration, (int32_t)t * width_ + j, p.n);
      c.path = tree.path;
      c.path.lineage = lineage_child(tree.path.lineage, j);
      if (p.trace.on()) c.drawn_end = trace_draw(p.trace, c.path.lineage, (int32_t)c.path.steps.size(), p.max_steps).ends;
      std::optional<GenRequest> g = step_job(s_, c.path, c.carry, c.stream, last_iteration(tree));
      if (!g) {
        reused.push_back((size_t)j);
        continue;
      }
      c.prefix = (int32_t)g->prefix.size();
      g->keep_kv = s_.live_beams && !last_iteration(tree);  // nothing continues the last
      g->from_job = c.gen_kv;
      jobs_[host.submit(std::move(*g))] = {t, (size_t)j};
    }
    if (s_.live_beams) host.keep_kv_only(referenced());  // after the jobs that fork them
    // After every job is out, so that these may speculate while the others write.
    for (size_t j : reused) {
      msg::GenDone d = std::move(*tree.cands[j].carry.step);
      tree.cands[j].carry.step.reset();
      ++tally_.steps_reused;
      written(host, t, j, d, 0);
    }
  }

  void resolve(SearchHost& host, size_t t, size_t j) {
    Subtree& tree = trees_[t];
    Candidate& c = tree.cands[j];
    c.score = aggregate_scores(c.path.step_scores, s_.params.aggregation);
    // (The last iteration does not speculate, and nothing is left to protect.)
    if ((prune_ || drop_) && !last_iteration(tree)) prune_beaten(host, t, j);
    if (++tree.resolved < width_) return;
    if (!tree.spec->at_barrier(host)) {
      tree.waiting = true;  // advance() once the speculation has ended
      return;
    }
    advance(host, t);
  }

  // Candidate j of subtree t is resolved. Of two resolved candidates the one
  // advance() would not keep over the other (the lower score; ties: the
  // later) is never kept, whatever the rest score: its speculation is
  // dropped now. A NaN score beats none and none beats it (advance() keeps
  // it only as the first candidate), so it is left out.
  void prune_beaten(SearchHost& host, size_t t, size_t j) {
    Subtree& tree = trees_[t];
    const float score = tree.cands[j].score;
    if (std::isnan(score)) return;
    if (tree.leader < 0) {
      tree.leader = (int32_t)j;
      return;
    }
    const float best = tree.cands[(size_t)tree.leader].score;
    const bool beats = score > best || (score == best && (int32_t)j < tree.leader);
    const size_t beaten = beats ? (size_t)tree.leader : j;
    if (prune_) tree.spec->prune(host, beaten);
    drop(host, t, beaten);
    if (beats) tree.leader = (int32_t)j;
  }

  // Nothing continues candidate j of subtree t: its jobs' KV may go, its speculation's too.
  void drop(SearchHost& host, size_t t, size_t j) {
    Candidate& c = trees_[t].cands[j];
    if (!drop_ || c.dropped) return;
    c.dropped = true;
    host.drop_kv(c.own_jobs);
    trees_[t].spec->drop(host, j);
  }

  // Every candidate is scored and no speculation runs: keep the best.
  void advance(SearchHost& host, size_t t) {
    Subtree& tree = trees_[t];
    tree.waiting = false;
    size_t best = 0;  // the first of equal scores, as np.argmax
    for (size_t i = 1; i < tree.cands.size(); ++i)
      if (tree.cands[i].score > tree.cands[best].score) best = i;
    const Candidate& kept = tree.cands[best];
    tree.path = kept.path;
    tree.gen_kv = kept.gen_kv, tree.score_kv = kept.score_kv;
    ++tree.iteration;
    if (kept.ended) {
      tree.done = true;
      tree.done_ms = host.elapsed_ms();
      ++done_;
    }
    if (tree.iteration < s_.params.max_steps)  // (after the last, nothing is left to protect)
      for (size_t i = 0; i < tree.cands.size(); ++i)
        if (i != best || tree.done) drop(host, t, i);
    msg::MapWriter ev;
    ev.put("kind", "iteration").put("subtree", (int32_t)t).put("iteration", tree.iteration);
    ev.put("score", kept.score).put("ended", kept.ended);
    ev.put("active", (int32_t)(trees_.size() - done_)).put("completed", (int32_t)done_);
    host.progress(ev);
    if (tree.done) return;
    std::vector<Carry> carries;
    for (int32_t j = 0; j < width_; ++j) {
      SearchPath copy = tree.path;
      copy.lineage = lineage_child(tree.path.lineage, j);
      carries.push_back(tree.spec->carry(best, copy, j, tree.iteration));
    }
    expand(host, t, std::move(carries));
  }

  // Live beams: the jobs whose kept sequences some subtree still refers to.
  std::unordered_set<uint64_t> referenced() const {
    std::unordered_set<uint64_t> ids;
    for (const Subtree& tree : trees_) {
      if (tree.done) continue;
      ids.insert({tree.gen_kv, tree.score_kv});
      for (const Candidate& c : tree.cands) ids.insert({c.gen_kv, c.score_kv});
      tree.spec->add_kv_jobs(&ids);
    }
    return ids;
  }

  SearchSetup s_;
  int32_t width_;
  bool speculate_;
  bool prune_;  // speculation_prune
  bool drop_;   // drop_dead_kv
  SpecTally tally_;
  std::vector<Subtree> trees_;
  std::unordered_map<uint64_t, std::pair<size_t, size_t>> jobs_;  // job id -> (subtree, candidate)
  size_t done_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_dvts(const SearchSetup& setup) { return std::make_unique<Dvts>(setup); }

}  // namespace flashtts
