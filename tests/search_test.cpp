// The search strategies (beam search, DVTS) against a scripted in-memory
// SearchHost: no sockets, no models. The scripted policy writes the step a
// test asks for; the scripted PRM reads a step's score out of its text
// ("p42" scores 0.42), so every test states exactly which beam should win.
// Also: the request checks of the new solve fields.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <span>

#include "actors/answer.h"
#include "actors/strategy.h"
#include "gpu/prm_format.h"
#include "messages/requests.h"

namespace flashtts {
namespace {

// ---------------------------------------------------------------- the script

// Token ids of the scripted policy: 10 is the step delimiter "\n\n", 11 EOS,
// 256 + c the character c; the prompt is {1, 2, 3}.
constexpr int32_t kDelim = 10, kEos = 11;
const std::vector<int32_t> kPrompt = {1, 2, 3};

std::string text_of(std::span<const int32_t> ids) {
  std::string s;
  for (int32_t t : ids) {
    if (t == kDelim) s += "\n\n";
    else if (t >= 256) s += char(t - 256);
  }
  return s;
}

struct Job {
  uint64_t id = 0;
  bool gen = true;
  int32_t beam = 0;
  std::vector<int32_t> tokens;  // gen: the context
  int32_t max_tokens = 0;
  bool stop = false;
  bool greedy = false;
  std::vector<std::string> steps;  // score: the steps
  int32_t round = 0;               // "iteration" events seen when it was submitted
  std::vector<int32_t> prefix;     // gen: tokens of the step written before
  bool speculative = false;
  bool keep_kv = false;
  uint64_t from_job = 0;

  // The text the beam had written when this job was asked for.
  std::string context_text() const { return text_of(std::span(tokens).subspan(kPrompt.size())); }
  int32_t steps_done() const { return (int32_t)split_steps(context_text()).size(); }
};

class ScriptHost final : public SearchHost {
 public:
  uint64_t submit(GenRequest g) override {
    Job j;
    j.id = ++next_, j.gen = true, j.beam = g.beam, j.tokens = std::move(g.tokens), j.max_tokens = g.max_tokens;
    j.stop = g.stop_at_delimiter, j.greedy = g.greedy, j.round = rounds;
    j.prefix = std::move(g.prefix), j.speculative = g.speculative;
    j.keep_kv = g.keep_kv, j.from_job = g.from_job;
    check_fork(j);
    return add(std::move(j));
  }
  void stop(std::vector<uint64_t> job_ids, std::vector<int32_t> at_tokens) override {
    for (size_t i = 0; i < job_ids.size(); ++i) stops[job_ids[i]] = at_tokens[i];
  }
  uint64_t submit_score(ScoreRequest s) override {
    Job j;
    j.id = ++next_, j.gen = false, j.beam = s.beam, j.steps = std::move(s.steps), j.round = rounds;
    j.keep_kv = s.keep_kv, j.from_job = s.from_job;
    check_fork(j);
    return add(std::move(j));
  }
  // As the beam manager: the finished keep_kv jobs not referenced are released.
  void keep_kv_only(const std::unordered_set<uint64_t>& referenced) override {
    for (auto it = kept.begin(); it != kept.end();) {
      if (referenced.count(*it)) {
        ++it;
        continue;
      }
      released.insert(*it);
      it = kept.erase(it);
    }
  }
  void drop_kv(std::vector<uint64_t> job_ids) override {
    std::erase(job_ids, 0);  // as the beam manager
    for (uint64_t id : job_ids) {
      EXPECT_TRUE(dropped.insert(id).second) << "job " << id << " dropped twice";
      EXPECT_TRUE(std::none_of(pending.begin(), pending.end(), [&](const Job& j) { return j.id == id; }))
          << "job " << id << " is still running";
    }
  }
  void progress(const msg::MapWriter& event) override {
    auto r = msg::MapReader::parse(event.bytes());
    ASSERT_TRUE(r.ok());
    std::string kind;
    ASSERT_TRUE(r->get("kind", &kind).ok());
    if (kind == "iteration") ++rounds;
    events.push_back(std::move(*r));
  }
  double elapsed_ms() const override { return double(++clock_); }

  std::vector<Job> log, pending;
  std::vector<msg::MapReader> events;
  std::map<uint64_t, int32_t> stops;  // job id -> at_tokens of its stop
  std::set<uint64_t> kept, released;  // live beams: finished keep_kv jobs, and those released
  std::set<uint64_t> dropped;          // drop_kv's jobs
  std::map<uint64_t, int32_t> written;  // generation job id -> tokens it generated (beyond its prefix)
  int64_t forks = 0;                   // jobs that named a from_job
  std::vector<std::string> bad_forks;  // why a from_job was wrong
  int32_t rounds = 0;

  // The non-greedy generation jobs of each round (iteration), in order.
  std::map<int32_t, std::vector<Job>> gens_by_round() const {
    std::map<int32_t, std::vector<Job>> m;
    for (const Job& j : log)
      if (j.gen && !j.greedy) m[j.round].push_back(j);
    return m;
  }
  std::vector<msg::MapReader> events_of(const std::string& kind) const {
    std::vector<msg::MapReader> out;
    for (const auto& e : events) {
      std::string k;
      if (e.get("kind", &k).ok() && k == kind) out.push_back(e);
    }
    return out;
  }

 private:
  // A job may start from a kept, unreleased sequence of a job of its own
  // kind whose input is a start of its own (an ancestor of its beam).
  void check_fork(const Job& j) {
    if (j.from_job == 0) return;
    ++forks;
    const std::string why = "job " + std::to_string(j.id + 0) + " from " + std::to_string(j.from_job) + ": ";
    if (j.from_job > log.size()) return bad_forks.push_back(why + "no such job");
    if (dropped.count(j.from_job)) return bad_forks.push_back(why + "dropped (drop_kv)");
    if (!kept.count(j.from_job)) return bad_forks.push_back(why + (released.count(j.from_job) ? "released" : "not kept"));
    const Job& f = log[j.from_job - 1];
    if (f.gen != j.gen) return bad_forks.push_back(why + "another model's sequence");
    if (j.gen) {
      std::vector<int32_t> ctx = j.tokens;
      ctx.insert(ctx.end(), j.prefix.begin(), j.prefix.end());
      if (f.tokens.size() > ctx.size() || !std::equal(f.tokens.begin(), f.tokens.end(), ctx.begin()))
        bad_forks.push_back(why + "not an ancestor's context");
    } else if (f.steps.size() > j.steps.size() + 1 ||
               !std::equal(f.steps.begin(), f.steps.begin() + (ptrdiff_t)std::min(f.steps.size(), j.steps.size()) -
                                                (f.steps.empty() ? 0 : 1),
                           j.steps.begin())) {
      bad_forks.push_back(why + "not an ancestor's steps");
    }
  }

  uint64_t add(Job j) {
    log.push_back(j);
    pending.push_back(std::move(j));
    return next_;
  }
  uint64_t next_ = 0;
  mutable int64_t clock_ = 0;
};

// The scripted PRM: "p42" scores 0.42; a step without "p" 0.5.
float prm_score(const std::string& step) {
  size_t at = step.find('p');
  if (at == std::string::npos || at + 2 >= step.size() || !isdigit(step[at + 1]) || !isdigit(step[at + 2]))
    return 0.5f;
  return float(std::stoi(step.substr(at + 1, 2))) / 100.0f;
}

struct Script {
  // The step the policy writes for a job: its text, then '|' for the
  // delimiter or '$' for EOS; neither means it hit its token limit. A job
  // without the delimiter stop that is given '|' writes the delimiter and
  // then EOS (it runs to the end).
  std::function<std::string(const Job&)> policy;
  std::function<float(const Job&, const std::string&)> prm = [](const Job&, const std::string& s) {
    return prm_score(s);
  };
  uint32_t shuffle = 0;  // 0: answer jobs in the order asked; else the seed of a random order
  bool speculation_last = false;  // answer speculative jobs only when nothing else is left
  // The generator stops every speculative job that starts afresh 2 tokens in
  // (to make room for real work); one that goes on from a prefix runs on.
  bool cut_speculation = false;
};

// A job with a prefix returns the prefix and then the scripted step.
msg::GenDone answer_gen(const Job& j, const std::string& spec) {
  msg::GenDone d;
  d.job_id = j.id, d.beam = j.beam;
  std::string body = spec;
  char end = 0;
  if (!body.empty() && (body.back() == '|' || body.back() == '$')) end = body.back(), body.pop_back();
  d.tokens = j.prefix;
  for (char c : body) d.tokens.push_back(256 + (unsigned char)c);
  if ((int32_t)d.tokens.size() >= j.max_tokens) {
    d.tokens.resize(j.max_tokens);
    end = 0;
  }
  if (end == '|') {
    d.tokens.push_back(kDelim);
    if (!j.stop) d.tokens.push_back(kEos);
  } else if (end == '$') {
    d.tokens.push_back(kEos);
  }
  d.text = text_of(d.tokens);
  d.finish = end == '|' ? (j.stop ? "delimiter" : "eos") : end == '$' ? "eos" : "length";
  return d;
}

std::vector<Completion> run(SearchStrategy& s, ScriptHost& h, const Script& sc) {
  s.start(h);
  std::mt19937 rng(sc.shuffle);
  int guard = 0;
  while (!h.pending.empty() && ++guard < 100000) {
    size_t pick = sc.shuffle ? rng() % h.pending.size() : 0;
    if (sc.speculation_last)
      for (size_t i = 0; i < h.pending.size(); ++i)
        if (!h.pending[i].speculative) {
          pick = i;
          break;
        }
    Job j = h.pending[pick];
    h.pending.erase(h.pending.begin() + (ptrdiff_t)pick);
    EXPECT_FALSE(s.finished()) << "a strategy asked for work after it finished";
    if (j.keep_kv) h.kept.insert(j.id);  // as the beam manager, before the strategy hears of it
    if (j.gen) {
      msg::GenDone d = answer_gen(j, sc.policy(j));
      if (sc.cut_speculation && j.speculative && j.prefix.empty() && d.tokens.size() > 2) {
        d.tokens.resize(2);
        d.text = text_of(d.tokens);
        d.finish = "stopped";
      }
      // A speculative job stopped before it ended holds what it had then.
      if (auto stop = h.stops.find(j.id); stop != h.stops.end() && (int32_t)d.tokens.size() > stop->second) {
        d.tokens.resize(stop->second);
        d.text = text_of(d.tokens);
        d.finish = "stopped";
      }
      h.written[j.id] = (int32_t)(d.tokens.size() - j.prefix.size());
      s.on_generated(h, d);
    } else {
      msg::ScoreDone d;
      d.job_id = j.id, d.beam = j.beam;
      for (const auto& st : j.steps) d.scores.push_back(sc.prm(j, st));
      s.on_scored(h, d);
    }
  }
  EXPECT_TRUE(s.finished());
  return s.finished() ? s.completions() : std::vector<Completion>{};
}

SearchSetup setup(const std::string& strategy, int32_t n, int32_t width, int32_t max_steps) {
  SearchSetup s;
  s.params.problem = "p";
  s.params.strategy = strategy;
  s.params.n = n, s.params.beam_width = width, s.params.max_steps = max_steps;
  s.params.max_tokens_per_step = 32;
  s.params.aggregation = "last";
  s.prompt = kPrompt;
  s.delimiter = "\n\n";
  return s;
}

// A step "pNN" whose score is a fixed pseudo-random function of the beam's
// stream and the steps before it, so beams differ and the test can rank them.
std::string pseudo_step(const Job& j) {
  uint32_t h = uint32_t(j.beam) * 2654435761u ^ uint32_t(j.steps_done() + 1) * 40503u;
  h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
  char buf[8];
  snprintf(buf, sizeof buf, "p%02u", h % 100);
  return buf;
}

// ---------------------------------------------------------------- beam search

TEST(BeamSearch, KeepsNBeamsInFlightAndCopiesTheBestNOverMEachMTimes) {
  auto st = setup("beam_search", 8, 4, 4);
  auto bs = make_beam_search(st);
  ScriptHost h;
  Script sc{[](const Job& j) { return pseudo_step(j) + "|"; }};
  auto done = run(*bs, h, sc);

  auto rounds = h.gens_by_round();
  ASSERT_EQ(rounds.size(), 4u) << "max_steps iterations, no more";
  for (auto& [r, jobs] : rounds) {
    ASSERT_EQ(jobs.size(), 8u) << "n beams in flight in iteration " << r;
    std::set<int32_t> ids;
    for (const Job& j : jobs) {
      ids.insert(j.beam);
      EXPECT_EQ(j.stop, r < 3) << "only the last iteration runs to the end";
      EXPECT_EQ(j.max_tokens, st.params.max_tokens_per_step);
      EXPECT_EQ(j.steps_done(), r);
    }
    EXPECT_EQ(ids.size(), 8u) << "every beam of an iteration has its own random stream";
  }
  for (int32_t r = 1; r < 4; ++r) {
    // The texts and scores the previous iteration ended with.
    std::vector<std::pair<float, std::string>> prev;
    for (const Job& j : rounds[r - 1]) {
      std::string step = pseudo_step(j);
      prev.push_back({prm_score(step), j.context_text() + step + "\n\n"});
    }
    std::map<std::string, int> parents;
    for (const Job& j : rounds[r]) ++parents[j.context_text()];
    ASSERT_EQ(parents.size(), 2u) << "n / beam_width survivors in iteration " << r;
    float worst_kept = 1, best_dropped = 0;
    for (auto& [score, text] : prev) {
      if (parents.count(text)) worst_kept = std::min(worst_kept, score);
      else best_dropped = std::max(best_dropped, score);
    }
    EXPECT_GE(worst_kept, best_dropped) << "the survivors are the best-scored beams";
    for (auto& [text, copies] : parents) EXPECT_EQ(copies, 4) << "each survivor copied beam_width times";
  }
  ASSERT_EQ(done.size(), 8u);
  for (const Completion& c : done) {
    EXPECT_EQ(c.finish, "eos");
    EXPECT_EQ(c.steps.size(), 4u);
    EXPECT_EQ(c.step_scores.size(), 4u) << "the trailing empty step is not scored";
    EXPECT_EQ(c.n_tokens, 4 * 4 + 1);  // 4 steps of "pNN" + delimiter, then EOS
  }
  auto its = h.events_of("iteration");
  ASSERT_EQ(its.size(), 4u);
  int32_t active = -1;
  ASSERT_TRUE(its[0].get("active", &active).ok());
  EXPECT_EQ(active, 2);
  ASSERT_TRUE(its[3].get("active", &active).ok());
  EXPECT_EQ(active, 0);
}

TEST(BeamSearch, SetsAsideEndedBeamsAndStillFillsToNBeams) {
  auto st = setup("beam_search", 4, 2, 3);
  auto bs = make_beam_search(st);
  ScriptHost h;
  // Iteration 0: stream 0 ends with EOS (the best score), stream 1 hits the
  // token limit, stream 2 writes an empty step; stream 3 goes on.
  Script sc{[](const Job& j) -> std::string {
    if (j.round == 0 && j.beam == 0) return "p99$";
    if (j.round == 0 && j.beam == 1) return std::string(40, 'x');  // over 32 tokens, no delimiter
    if (j.round == 0 && j.beam == 2) return "$";
    return pseudo_step(j) + "|";
  }};
  auto done = run(*bs, h, sc);
  auto rounds = h.gens_by_round();
  ASSERT_EQ(rounds.size(), 3u);
  // Only stream 3 was active: it fills all 4 slots of iteration 1.
  for (const Job& j : rounds[1]) EXPECT_EQ(j.context_text(), pseudo_step(rounds[0][3]) + "\n\n");
  EXPECT_EQ(rounds[1].size(), 4u);
  EXPECT_EQ(rounds[2].size(), 4u);
  // The first three completions are the ones set aside in iteration 0.
  ASSERT_EQ(done.size(), 4u);
  EXPECT_EQ(done[0].text, "p99");
  EXPECT_EQ(done[0].finish, "eos");
  EXPECT_EQ(done[1].finish, "length");
  EXPECT_EQ(done[2].text, "");
  EXPECT_TRUE(done[2].step_scores.empty()) << "an empty solution is never scored";
  // No score job was ever asked for an empty step list.
  for (const Job& j : h.log) {
    if (!j.gen) {
      EXPECT_FALSE(j.steps.empty());
    }
  }
  // The default sort_completed = false keeps the first n set aside.
  EXPECT_EQ(done[3].finish, "eos");
}

TEST(BeamSearch, StopsWhenNoBeamIsActive) {
  auto st = setup("beam_search", 4, 2, 10);
  auto bs = make_beam_search(st);
  ScriptHost h;
  Script sc{[](const Job& j) { return j.steps_done() == 1 ? std::string("p50$") : pseudo_step(j) + "|"; }};
  auto done = run(*bs, h, sc);
  EXPECT_EQ(h.gens_by_round().size(), 2u) << "every beam ended in iteration 1";
  EXPECT_EQ(done.size(), 4u);
  for (const Completion& c : done) EXPECT_EQ(c.steps.size(), 2u);
}

TEST(BeamSearch, MaxStepsOfOneIsBestOfNToTheEnd) {
  auto st = setup("beam_search", 4, 2, 1);
  auto bs = make_beam_search(st);
  ScriptHost h;
  Script sc{[](const Job& j) { return pseudo_step(j) + "|"; }};
  auto done = run(*bs, h, sc);
  auto rounds = h.gens_by_round();
  ASSERT_EQ(rounds.size(), 1u);
  for (const Job& j : rounds[0]) EXPECT_FALSE(j.stop);
  EXPECT_EQ(done.size(), 4u);
}

TEST(BeamSearch, TheAnswerMarkerEndsABeamAndAnEmptyMarkerDoesNot) {
  for (std::string marker : {"\\boxed", ""}) {
    auto st = setup("beam_search", 4, 2, 3);
    st.params.answer_marker = marker;
    auto bs = make_beam_search(st);
    ScriptHost h;
    Script sc{[](const Job& j) -> std::string {
      if (j.round == 0 && j.beam == 1) return "so \\boxed{4} p90|";
      return pseudo_step(j) + "|";
    }};
    auto done = run(*bs, h, sc);
    ASSERT_FALSE(done.empty());
    if (!marker.empty()) {
      EXPECT_EQ(done[0].text, "so \\boxed{4} p90\n\n");
      EXPECT_EQ(done[0].finish, "delimiter");
      EXPECT_EQ(extract_answer(done[0].text), "4");
    } else {
      for (const Completion& c : done) EXPECT_EQ(c.finish, "eos") << "nothing ends before the last iteration";
    }
  }
}

TEST(BeamSearch, ABareDelimiterStepKeepsTheLastRealStepsScore) {
  auto st = setup("beam_search", 2, 1, 3);
  auto bs = make_beam_search(st);
  ScriptHost h;
  // Stream 0 writes "p70", then a bare delimiter, then ends.
  Script sc{[](const Job& j) -> std::string {
    if (j.round == 0) return j.beam == 0 ? "p70|" : "p10|";
    if (j.round == 1) return "|";
    return "p30$";
  }};
  auto done = run(*bs, h, sc);
  // Iteration 1 added no step: no score job for it.
  for (const Job& j : h.log) {
    if (!j.gen && j.round == 1) ADD_FAILURE() << "a step that adds no text was scored";
  }
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].steps, (std::vector<std::string>{"p70", "p30"}));
  EXPECT_EQ(done[0].step_scores, (std::vector<float>{0.70f, 0.30f}));
}

TEST(BeamSearch, FilterDuplicatesKeepsDistinctSurvivors) {
  for (bool filter : {false, true}) {
    auto st = setup("beam_search", 4, 2, 2);
    st.params.filter_duplicates = filter;
    auto bs = make_beam_search(st);
    ScriptHost h;
    // Streams 0 and 1 write the same best step; 2 and 3 worse, distinct ones.
    Script sc{[](const Job& j) -> std::string {
      if (j.round > 0) return "p50|";
      return j.beam < 2 ? "p90|" : j.beam == 2 ? "p60|" : "p20|";
    }};
    run(*bs, h, sc);
    auto rounds = h.gens_by_round();
    std::set<std::string> parents;
    for (const Job& j : rounds[1]) parents.insert(j.context_text());
    if (filter) EXPECT_EQ(parents, (std::set<std::string>{"p90\n\n", "p60\n\n"}));
    else EXPECT_EQ(parents, (std::set<std::string>{"p90\n\n"})) << "both survivors are the same text";
  }
}

TEST(BeamSearch, LookAheadStepsAreScoredButTheRankingUsesTheRealStepsOnly) {
  auto st = setup("beam_search", 4, 2, 3);
  st.params.lookahead = 1;
  auto bs = make_beam_search(st);
  ScriptHost h;
  // Iteration 0: stream 0 writes the best real step but its greedy
  // continuation scores 0.05; stream 1's real step is worse but its
  // continuation scores 0.95.
  Script sc{[](const Job& j) -> std::string {
    if (j.greedy) return j.context_text().rfind("p90", 0) == 0 ? "p05|" : "p95|";
    if (j.round == 0) return j.beam == 0 ? "p90|" : j.beam == 1 ? "p80|" : j.beam == 2 ? "p10|" : "p11|";
    return pseudo_step(j) + "|";
  }};
  auto done = run(*bs, h, sc);
  auto rounds = h.gens_by_round();
  std::set<std::string> parents;
  for (const Job& j : rounds[1]) parents.insert(j.context_text());
  // Ranked by the real steps (as the reference ranks), p90 and p80 survive,
  // although p90's look-ahead step scores 0.05 and the others' 0.95.
  EXPECT_EQ(parents, (std::set<std::string>{"p90\n\n", "p80\n\n"}));
  // Look-ahead: greedy, stops at the delimiter, asked after the real step
  // and before its score; never in the last iteration.
  for (size_t i = 0; i < h.log.size(); ++i) {
    const Job& j = h.log[i];
    if (!j.greedy) continue;
    EXPECT_TRUE(j.gen && j.stop);
    EXPECT_LT(j.round, 2) << "no look-ahead in the last iteration";
    bool scored_after = false;
    for (size_t k = i + 1; k < h.log.size(); ++k)
      if (!h.log[k].gen && h.log[k].beam == j.beam && h.log[k].round == j.round) {
        scored_after = true;
        EXPECT_EQ(h.log[k].steps.size(), (size_t)j.steps_done() + 1) << "real steps then the look-ahead step";
        EXPECT_EQ(h.log[k].steps.back()[0], 'p');
      }
    EXPECT_TRUE(scored_after);
  }
  // The kept beams carry only real steps and their scores.
  for (const Completion& c : done) {
    EXPECT_EQ(c.steps.size(), 3u);
    EXPECT_EQ(c.step_scores.size(), 3u);
    EXPECT_TRUE(c.steps[0] == "p90" || c.steps[0] == "p80") << c.steps[0];
    EXPECT_FLOAT_EQ(c.step_scores[0], prm_score(c.steps[0]));
  }
}

// The paper's score bins (SearchSetup::speculation_bins): in iteration 1 the
// copies of p90 rank in the first quarter, those of p80 in the third, so
// p80's copies (12 tokens) may speculate half of the 20 - 12 the lockstep
// gives; without the bins all 8.
TEST(BeamSearch, ScoreBinsHalveTheSpeculationOfTheThirdQuarter) {
  for (bool bins : {true, false}) {
    auto st = setup("beam_search", 4, 2, 3);
    st.speculation = true;
    st.speculation_bins = bins;
    auto bs = make_beam_search(st);
    ScriptHost h;
    Script sc{[](const Job& j) -> std::string {
      const std::string ctx = j.context_text();
      if (j.speculative) return "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz|";
      if (j.round == 0) {
        const char* steps[] = {"p90|", "p80|", "p10|", "p11|"};  // all 4 tokens: nothing to speculate
        return steps[j.beam];
      }
      if (j.round == 1) return ctx.rfind("p90", 0) == 0 ? "p91xxxxxxxxxxxxxxxx|" : "p81xxxxxxxx|";  // 20, 12
      return pseudo_step(j) + "|";
    }};
    auto done = run(*bs, h, sc);
    ASSERT_FALSE(done.empty());
    std::vector<int32_t> p80_caps, p90_caps;
    for (const Job& j : h.log) {
      if (!j.gen || !j.speculative || j.round != 1) continue;
      (j.context_text().rfind("p80", 0) == 0 ? p80_caps : p90_caps).push_back(h.stops.at(j.id));
    }
    EXPECT_EQ(p90_caps, std::vector<int32_t>({0, 0})) << "the longest steps get nothing";
    // Both p80 copies: the one written last is not the longest, and gets
    // what the lockstep would have given it too.
    EXPECT_EQ(p80_caps, std::vector<int32_t>(2, bins ? 4 : 8)) << "bins " << bins;
  }
}

// Speculative beam extension, with the script answering jobs in the order
// asked: the four real steps of iteration 0 come back first, then the
// speculations (cut at their caps by the host's stop), then the scores.
TEST(BeamSearch, SpeculationIsCappedByTheLockstepAndTakenOverByTheSurvivorsCopies) {
  auto st = setup("beam_search", 4, 2, 3);
  st.speculation = true;
  auto bs = make_beam_search(st);
  ScriptHost h;
  Script sc{[](const Job& j) -> std::string {
    const std::string ctx = j.context_text();
    if (j.round == 0 && !j.speculative) {
      // Steps of 4, 12, 4 and 20 tokens (the delimiter is one).
      const char* steps[] = {"p90|", "p80xxxxxxxx|", "p10|", "p11xxxxxxxxxxxxxxxx|"};
      return steps[j.beam];
    }
    if (j.round == 0 && j.speculative) {
      if (ctx == "p90\n\n") return "p70|";                  // 4 tokens: whole within its cap
      if (ctx == "p80xxxxxxxx\n\n") return "p60yyyyyyyyyyyyyyy|";  // 19 tokens: cut at 8
      return "p50|";
    }
    return pseudo_step(j) + "|";
  }};
  auto done = run(*bs, h, sc);
  ASSERT_FALSE(done.empty());

  // Three speculations (the last beam to write has nobody to wait for), each
  // capped at the longest step's 20 tokens less its own.
  std::vector<Job> spec0;
  for (const Job& j : h.log)
    if (j.gen && j.speculative && j.round == 0) spec0.push_back(j);
  ASSERT_EQ(spec0.size(), 3u);
  EXPECT_EQ(h.stops.at(spec0[0].id), 16);
  EXPECT_EQ(h.stops.at(spec0[1].id), 8);
  EXPECT_EQ(h.stops.at(spec0[2].id), 16);
  for (const Job& j : spec0) {
    EXPECT_GE(j.beam, 4 * 3) << "speculation has streams of its own";
    EXPECT_FALSE(j.prefix.size());
  }

  // Iteration 1: p90 and p80 survive. p90's copy 0 needs no generation (its
  // step p70 was written and scored ahead); p80's copy 0 continues the 8 kept
  // tokens on the speculation's own stream; each copy 1 keeps 1 .. all-but-one
  // tokens of its parent's speculation and writes on with its own stream.
  std::vector<Job> round1;
  for (const Job& j : h.log)
    if (j.gen && !j.speculative && j.round == 1) round1.push_back(j);
  ASSERT_EQ(round1.size(), 3u);
  int continued = 0, truncated = 0;
  for (const Job& j : round1) {
    const std::string ctx = j.context_text();
    EXPECT_NE(ctx, "p90\n\np70\n\n");
    if (ctx == "p80xxxxxxxx\n\n" && j.beam == spec0[1].beam) {
      EXPECT_EQ(j.prefix.size(), 8u);
      EXPECT_EQ(text_of(j.prefix), "p60yyyyy");
      ++continued;
    } else {
      EXPECT_LT(j.beam, 4 * 3);
      const std::string spec = ctx == "p90\n\n" ? "p70\n\n" : "p60yyyyy";
      ASSERT_GE(j.prefix.size(), 1u);
      EXPECT_LE(j.prefix.size(), ctx == "p90\n\n" ? 3u : 7u);
      EXPECT_EQ(spec.rfind(text_of(j.prefix), 0), 0u) << text_of(j.prefix);
      ++truncated;
    }
  }
  EXPECT_EQ(continued, 1);
  EXPECT_EQ(truncated, 2);
  // The look-ahead verification scored p90 + p70 once; no other job scored it.
  int p70_scorings = 0;
  for (const Job& j : h.log)
    if (!j.gen && j.steps == std::vector<std::string>{"p90", "p70"}) ++p70_scorings;
  EXPECT_EQ(p70_scorings, 1);
  // The reused step is part of a completed beam with its own score.
  bool found = false;
  for (const Completion& c : done)
    if (c.steps.size() >= 2 && c.steps[0] == "p90" && c.steps[1] == "p70") {
      found = true;
      EXPECT_FLOAT_EQ(c.step_scores[1], 0.70f);
    }
  EXPECT_TRUE(found);

  msg::MapWriter w;
  bs->add_stats(w);
  auto r = msg::MapReader::parse(w.bytes());
  ASSERT_TRUE(r.ok());
  msg::MapReader sp;
  ASSERT_TRUE(r->get("speculation", &sp).ok());
  int64_t gen = 0, kept = 0, dropped = 0, reused = 0;
  ASSERT_TRUE(sp.get("tokens_generated", &gen).ok());
  ASSERT_TRUE(sp.get("tokens_kept", &kept).ok());
  ASSERT_TRUE(sp.get("tokens_dropped", &dropped).ok());
  ASSERT_TRUE(sp.get("steps_reused", &reused).ok());
  EXPECT_EQ(gen, kept + dropped);
  EXPECT_GE(reused, 1);
  EXPECT_GE(kept, 4 + 8);
}

TEST(BeamSearch, TruncatedCopiesKeepAboutEightyFivePercentOfTheSpeculation) {
  // 63 short steps and one straggler: each short beam writes a whole step of
  // 151 tokens ahead (cap 197); the 16 survivors' copies 1..3 keep r ~ N(0.85, 0.1).
  auto st = setup("beam_search", 64, 4, 2);
  st.params.max_tokens_per_step = 400;
  st.speculation = true;
  auto bs = make_beam_search(st);
  ScriptHost h;
  Script sc{[](const Job& j) -> std::string {
    if (j.speculative) return std::string(150, 's') + "|";
    if (j.round == 0) {
      if (j.beam == 63) return "p01" + std::string(197, 'x') + "|";
      char b[8];
      snprintf(b, sizeof b, "p%02d|", 10 + j.beam);
      return b;
    }
    return "end$";
  }};
  run(*bs, h, sc);
  std::vector<double> ratios;
  int whole = 0;
  for (const Job& j : h.log) {
    if (!j.gen || j.speculative || j.round != 1) continue;
    if (j.prefix.size() == 151) {
      ++whole;  // copy 0 continues all of it (the last iteration writes to the end)
      continue;
    }
    ASSERT_GE(j.prefix.size(), 1u);
    ASSERT_LE(j.prefix.size(), 150u);
    ratios.push_back(double(j.prefix.size()) / 151.0);
  }
  EXPECT_EQ(whole, 16);
  ASSERT_EQ(ratios.size(), 48u);
  double mean = 0, var = 0;
  for (double r : ratios) mean += r / ratios.size();
  for (double r : ratios) var += (r - mean) * (r - mean) / (ratios.size() - 1);
  EXPECT_NEAR(mean, 0.845, 0.04);  // floor() takes half a token off 0.85
  EXPECT_NEAR(std::sqrt(var), 0.1, 0.035);
  // No two copies of one parent are the same beam: their prefixes differ or
  // their streams do.
  std::set<std::pair<std::string, int32_t>> seen;
  for (const Job& j : h.log)
    if (j.gen && !j.speculative && j.round == 1) {
      EXPECT_TRUE(seen.insert({j.context_text(), j.beam}).second);
    }
}

TEST(BeamSearch, WithACostBoundTheBarrierEndsTheSpeculationStillRunning) {
  // The generator held the speculations back (the script answers them last):
  // with a bound the barrier does not wait for their caps, it ends them.
  int ended_now[2] = {0, 0};  // speculations stopped at 0 tokens: by a cap of 0, or by the barrier
  for (bool bounded : {false, true}) {
    auto st = setup("beam_search", 4, 2, 3);
    st.speculation = true;
    st.speculation_bounded = bounded;
    auto bs = make_beam_search(st);
    ScriptHost h;
    Script sc{[](const Job& j) { return pseudo_step(j) + (j.beam % 2 ? "xxxxxxx|" : "|"); }};
    sc.speculation_last = true;
    auto done = run(*bs, h, sc);
    EXPECT_FALSE(done.empty());
    for (const Job& j : h.log)
      if (j.speculative && h.stops.count(j.id) && h.stops.at(j.id) == 0) ++ended_now[bounded];
  }
  // Without a bound only the beams as long as the longest (cap 0) stop at 0.
  EXPECT_GT(ended_now[1], ended_now[0]);
}

TEST(BeamSearch, NoSpeculationWhenOffWithLookAheadOrInTheLastIteration) {
  for (int mode = 0; mode < 3; ++mode) {
    auto st = setup("beam_search", 4, 2, 3);
    st.speculation = mode != 0;
    if (mode == 2) st.params.lookahead = 1;
    auto bs = make_beam_search(st);
    ScriptHost h;
    Script sc{[](const Job& j) { return pseudo_step(j) + (j.beam % 2 ? "xxxxxxx|" : "|"); }};
    run(*bs, h, sc);
    int spec = 0;
    for (const Job& j : h.log) {
      if (!j.gen || !j.speculative) continue;
      ++spec;
      EXPECT_LT(j.round, 2) << "the last iteration has no next step to write ahead";
    }
    if (mode == 1) EXPECT_GT(spec, 0);
    else EXPECT_EQ(spec, 0) << "mode " << mode;
  }
}

TEST(BeamSearch, SortCompletedKeepsTheNBestInsteadOfTheFirstN) {
  for (bool sort : {false, true}) {
    auto st = setup("beam_search", 2, 1, 3);
    st.params.sort_completed = sort;
    auto bs = make_beam_search(st);
    ScriptHost h;
    // Iteration 0 sets aside two weak beams; the last iteration ends two strong ones.
    Script sc{[](const Job& j) -> std::string {
      if (j.round == 0) return j.beam == 0 ? "p10$" : "p20|";
      if (j.round == 1) return j.beam % 2 == 0 ? "p15$" : "p30|";
      return "p99|";
    }};
    auto done = run(*bs, h, sc);
    ASSERT_EQ(done.size(), 2u);
    std::vector<float> scores;
    for (const auto& c : done) scores.push_back(c.step_scores.back());
    if (sort) EXPECT_EQ(scores, (std::vector<float>{0.99f, 0.99f}));
    else EXPECT_EQ(scores, (std::vector<float>{0.10f, 0.15f}));
  }
}

TEST(BeamSearch, TheResultDoesNotDependOnTheOrderJobsComeBackIn) {
  auto texts = [](uint32_t shuffle) {
    auto st = setup("beam_search", 8, 2, 5);
    st.params.lookahead = 1;
    auto bs = make_beam_search(st);
    ScriptHost h;
    Script sc{[](const Job& j) { return (j.greedy ? "g" : "") + pseudo_step(j) + "|"; }};
    sc.shuffle = shuffle;
    std::vector<std::string> out;
    for (const auto& c : run(*bs, h, sc)) out.push_back(std::to_string(c.beam) + ":" + c.text);
    return out;
  };
  auto fifo = texts(0);
  EXPECT_EQ(fifo.size(), 8u);
  EXPECT_EQ(texts(1), fifo);
  EXPECT_EQ(texts(2), fifo);
}

// A search of `strategy` whose steps differ in length (beams wait for each
// other), answered in the order `shuffle` picks: its completions, and how many
// speculative jobs and jobs continuing a prefix it asked for.
struct UnevenRun {
  std::vector<std::string> texts;
  int64_t spec_jobs = 0, prefix_jobs = 0;
  int64_t resumed = 0;  // speculative jobs that go on from a prefix
  // Live beams: jobs that named a from_job, wrong ones, released sequences,
  // sequences still kept at the end (the Forget's), and real jobs after the
  // first iteration's that started from nothing.
  int64_t forks = 0, released = 0, kept_at_end = 0, unforked = 0;
  std::vector<std::string> bad_forks;
  std::set<uint64_t> dropped;  // drop_kv's jobs
  // Dead branches first with speculation: speculative jobs dropped, and of
  // them those a later real job goes on from (same context, with a prefix: a
  // survivor's).
  int64_t spec_dropped = 0, spec_dropped_carried = 0;
  int64_t real_jobs = 0;       // non-speculative jobs
  // Beam search's stats.straggler_chain_tokens, and the same from the jobs:
  // per iteration the most a real step job generated, summed (-1: none).
  int64_t chain = -1, chain_of_jobs = 0;
  // The search's stats.speculation (-1: none).
  int64_t spec_generated = -1, spec_kept = -1, steps_reused = -1;
  int64_t pruned_early = -1, pruned_early_stopped = -1, pruned_early_tokens = -1;
};
// run_uneven's further options.
struct UnevenOptions {
  bool live = false, cut = false;
  bool prune = false;              // SearchSetup::speculation_prune
  bool speculation_last = false;   // Script::speculation_last
  bool filter_duplicates = false;
  bool drop = false;               // SearchSetup::drop_dead_kv
};
UnevenRun run_uneven(const std::string& strategy, int32_t width, int32_t max_steps, uint32_t shuffle, bool speculation,
                     const UnevenOptions& opt);
UnevenRun run_uneven(const std::string& strategy, int32_t width, int32_t max_steps, uint32_t shuffle, bool speculation,
                     bool live = false, bool cut = false) {
  return run_uneven(strategy, width, max_steps, shuffle, speculation, UnevenOptions{.live = live, .cut = cut});
}
UnevenRun run_uneven(const std::string& strategy, int32_t width, int32_t max_steps, uint32_t shuffle, bool speculation,
                     const UnevenOptions& opt) {
  const bool live = opt.live, cut = opt.cut;
  auto st = setup(strategy, 8, width, max_steps);
  st.speculation = speculation;
  st.speculation_prune = opt.prune;
  st.params.filter_duplicates = opt.filter_duplicates;
  st.live_beams = live;
  st.drop_dead_kv = opt.drop;
  auto search = make_strategy(st);
  ScriptHost h;
  Script sc{[](const Job& j) {
    std::string s = pseudo_step(j);
    s += std::string((size_t)(s[2] - '0'), 'x') + "|";
    // A job whose prefix starts its stream's own step samples the rest of
    // that step, as the model samples by (stream, position).
    const std::string pre = text_of(j.prefix);
    return s.rfind(pre, 0) == 0 ? s.substr(pre.size()) : s;
  }};
  sc.shuffle = shuffle;
  sc.cut_speculation = cut;
  sc.speculation_last = opt.speculation_last;
  UnevenRun out;
  for (const auto& c : run(*search, h, sc)) out.texts.push_back(std::to_string(c.beam) + ":" + c.text);
  for (const Job& j : h.log) {
    out.spec_jobs += j.speculative;
    out.prefix_jobs += !j.speculative && !j.prefix.empty();
    out.resumed += j.speculative && !j.prefix.empty();
    out.unforked += j.round > 0 && !j.greedy && j.from_job == 0;
  }
  out.forks = h.forks, out.bad_forks = h.bad_forks, out.dropped = h.dropped;
  for (const Job& j : h.log) out.real_jobs += !j.speculative;
  std::map<int32_t, int32_t> longest;  // round -> the most a real step job generated
  for (const Job& j : h.log)
    if (j.gen && !j.speculative && !j.greedy) longest[j.round] = std::max(longest[j.round], h.written[j.id]);
  for (const auto& [round, tokens] : longest) out.chain_of_jobs += tokens;
  for (const Job& s : h.log) {
    if (!s.gen || !s.speculative) continue;
    const bool dropped = h.dropped.count(s.id) > 0;
    out.spec_dropped += dropped;
    if (dropped)
      out.spec_dropped_carried += std::any_of(h.log.begin() + (ptrdiff_t)s.id, h.log.end(), [&](const Job& j) {
        return j.gen && !j.speculative && !j.prefix.empty() && j.tokens == s.tokens;
      });
  }
  out.released = (int64_t)h.released.size(), out.kept_at_end = (int64_t)h.kept.size();
  msg::MapWriter w;
  search->add_stats(w);
  auto r = msg::MapReader::parse(w.bytes());
  EXPECT_TRUE(r.ok());
  if (r.ok() && strategy == "beam_search") {
    EXPECT_TRUE(r->get("straggler_chain_tokens", &out.chain).ok());
  }
  if (msg::MapReader sp; r.ok() && r->get("speculation", &sp).ok()) {
    EXPECT_TRUE(sp.get("tokens_generated", &out.spec_generated).ok());
    EXPECT_TRUE(sp.get("tokens_kept", &out.spec_kept).ok());
    EXPECT_TRUE(sp.get("steps_reused", &out.steps_reused).ok());
    EXPECT_TRUE(sp.get("pruned_early", &out.pruned_early).ok());
    EXPECT_TRUE(sp.get("pruned_early_stopped", &out.pruned_early_stopped).ok());
    EXPECT_TRUE(sp.get("tokens_pruned_early", &out.pruned_early_tokens).ok());
  }
  return out;
}

// With speculation the kept tokens are capped by the lockstep, not by when
// jobs come back: any order of results gives the same search.
TEST(BeamSearch, WithSpeculationTheResultDoesNotDependOnTheOrderJobsComeBackIn) {
  UnevenRun fifo = run_uneven("beam_search", 2, 5, 0, true);
  EXPECT_EQ(fifo.texts.size(), 8u);
  EXPECT_GT(fifo.spec_jobs, 0);
  for (uint32_t shuffle = 1; shuffle <= 6; ++shuffle)
    EXPECT_EQ(run_uneven("beam_search", 2, 5, shuffle, true).texts, fifo.texts) << "order " << shuffle;
  EXPECT_EQ(run_uneven("beam_search", 2, 5, 0, false).spec_jobs, 0);
}

// Beam search reports its straggler chain: per iteration the most tokens a
// beam's real step generated, summed; speculation shortens it (the scripted
// steps depend on the streams, which speculation changes, so the searches
// differ; both chains are those of the jobs).
TEST(BeamSearch, ReportsTheStragglerChainThatSpeculationShortens) {
  const UnevenRun off = run_uneven("beam_search", 2, 5, 0, false);
  EXPECT_GT(off.chain, 0);
  EXPECT_EQ(off.chain, off.chain_of_jobs);
  for (uint32_t shuffle : {0u, 3u})
    for (bool live : {false, true}) {
      SCOPED_TRACE("order " + std::to_string(shuffle) + (live ? ", live beams" : ""));
      const UnevenRun on = run_uneven("beam_search", 2, 5, shuffle, true, live);
      EXPECT_EQ(on.chain, on.chain_of_jobs);
      EXPECT_LT(on.chain, off.chain);
    }
}

// The generator stops speculative jobs to make room for real work whenever
// memory runs short; without a cost bound a speculation stopped short of its
// cap goes on from where it stopped, on its stream, so the search is the one
// with no stops, whatever order the results come back in.
TEST(BeamSearch, ASpeculationTheGeneratorStopsShortGoesOnAndTheSearchIsTheSame) {
  for (const char* strategy : {"beam_search", "dvts"}) {
    SCOPED_TRACE(strategy);
    const int32_t width = std::string(strategy) == "dvts" ? 4 : 2;
    const UnevenRun whole = run_uneven(strategy, width, 5, 0, true);
    EXPECT_EQ(whole.resumed, 0);
    for (uint32_t shuffle = 0; shuffle <= 4; ++shuffle)
      for (bool live : {false, true}) {
        const UnevenRun cut = run_uneven(strategy, width, 5, shuffle, true, live, /*cut=*/true);
        SCOPED_TRACE("order " + std::to_string(shuffle) + (live ? ", live beams" : ""));
        EXPECT_EQ(cut.texts, whole.texts);
        EXPECT_GT(cut.resumed, 0);
        EXPECT_TRUE(cut.bad_forks.empty()) << cut.bad_forks.front();
      }
  }
}

// speculation_prune: a beam (a DVTS candidate) certain to be pruned before
// every score is in has its speculation stopped at once; survivors' are
// untouched, so what they keep and the search are the same as without, in
// any order of results, live beams or not.
TEST(BeamSearch, SpeculationOfBeamsCertainToBePrunedStopsEarlyAndTheSearchIsTheSame) {
  for (const char* strategy : {"beam_search", "dvts"}) {
    SCOPED_TRACE(strategy);
    const int32_t width = std::string(strategy) == "dvts" ? 4 : 2;
    for (uint32_t shuffle : {0u, 1u, 2u, 3u})
      for (bool live : {false, true}) {
        SCOPED_TRACE("order " + std::to_string(shuffle) + (live ? ", live beams" : ""));
        // Speculative jobs answered last: they still run when the scores
        // come in, as on a busy generator.
        UnevenOptions o{.live = live, .speculation_last = true};
        const UnevenRun off = run_uneven(strategy, width, 5, shuffle, true, o);
        o.prune = true;
        const UnevenRun on = run_uneven(strategy, width, 5, shuffle, true, o);
        EXPECT_EQ(on.texts, off.texts);
        // No survivor's speculation was cut: copies keep the same tokens.
        EXPECT_EQ(on.spec_kept, off.spec_kept);
        EXPECT_EQ(on.steps_reused, off.steps_reused);
        EXPECT_EQ(on.prefix_jobs, off.prefix_jobs);
        EXPECT_TRUE(on.bad_forks.empty()) << on.bad_forks.front();
        EXPECT_EQ(off.pruned_early, 0);
        EXPECT_GT(on.pruned_early_stopped, 0);
        EXPECT_GE(on.pruned_early, on.pruned_early_stopped);
        EXPECT_LT(on.spec_generated, off.spec_generated) << "stopped speculations wrote less";
        EXPECT_LE(on.pruned_early_tokens, on.spec_generated - on.spec_kept);
      }
  }
}

TEST(BeamSearch, WithFilterDuplicatesNoSpeculationIsDroppedEarly) {
  // A duplicate dropped at the selection frees a place for a beam ranked
  // below beam_width others: no beam is certain to be pruned before then.
  UnevenOptions o{.prune = true, .speculation_last = true, .filter_duplicates = true};
  const UnevenRun on = run_uneven("beam_search", 2, 5, 0, true, o);
  o.prune = false;
  const UnevenRun off = run_uneven("beam_search", 2, 5, 0, true, o);
  EXPECT_EQ(on.texts, off.texts);
  EXPECT_GT(on.spec_generated, 0);
  EXPECT_EQ(on.pruned_early, 0);
  EXPECT_EQ(on.spec_generated, off.spec_generated);
}

// Live beams: every job after the first iteration's forks a kept sequence of
// its beam's ancestry that was not released yet; what no beam refers to is
// released as the search goes; the search is the same as without.
TEST(BeamSearch, LiveBeamsForkTheirAncestorsKeptSequencesAndReleaseTheRest) {
  for (bool speculation : {false, true}) {
    const UnevenRun off = run_uneven("beam_search", 2, 5, 0, speculation);
    for (uint32_t shuffle : {0u, 3u}) {
      const UnevenRun on = run_uneven("beam_search", 2, 5, shuffle, speculation, /*live=*/true);
      SCOPED_TRACE("speculation " + std::to_string(speculation) + ", order " + std::to_string(shuffle));
      EXPECT_EQ(on.texts, off.texts);
      EXPECT_GT(on.forks, 0);
      EXPECT_TRUE(on.bad_forks.empty()) << on.bad_forks.front();
      EXPECT_EQ(on.unforked, 0);
      EXPECT_GT(on.released, 0);
      // At the end: at most a policy and a PRM sequence per beam in flight,
      // and the last iteration's speculations (none: it is the last).
      EXPECT_LE(on.kept_at_end, 2 * 8);
      EXPECT_EQ(off.forks, 0);
    }
  }
}

// ---------------------------------------------------------------- dvts

TEST(Dvts, EachSubtreeSamplesMCandidatesAndKeepsTheBest) {
  auto st = setup("dvts", 6, 3, 3);
  auto dv = make_dvts(st);
  ScriptHost h;
  Script sc{[](const Job& j) { return pseudo_step(j) + "|"; }};
  auto done = run(*dv, h, sc);
  // Per (context): exactly 3 candidate jobs; 2 subtrees x 3 iterations.
  std::map<std::string, std::vector<Job>> by_ctx;
  for (const Job& j : h.log)
    if (j.gen) by_ctx[j.context_text()].push_back(j);
  ASSERT_EQ(by_ctx.size(), 1u + 2u + 2u) << "the shared prompt, then two paths per iteration";
  EXPECT_EQ(by_ctx[""].size(), 6u);
  for (auto& [ctx, jobs] : by_ctx) {
    if (ctx.empty()) continue;
    EXPECT_EQ(jobs.size(), 3u);
    // The path continued is the best of the candidates it came from.
    std::string parent = ctx.substr(0, ctx.size() - 5);  // minus "pNN\n\n"
    float best = 0;
    for (const Job& c : by_ctx[parent])
      if ((c.beam % 6) / 3 == (jobs[0].beam % 6) / 3) best = std::max(best, prm_score(pseudo_step(c)));
    EXPECT_FLOAT_EQ(prm_score(split_steps(ctx).back()), best);
  }
  for (auto& [ctx, jobs] : by_ctx)
    for (const Job& j : jobs) EXPECT_EQ(j.stop, j.steps_done() < 2);
  // n completions: each subtree's last three candidates.
  ASSERT_EQ(done.size(), 6u);
  for (int t = 0; t < 2; ++t) {
    std::string prefix = done[t * 3].text.substr(0, 10);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(done[t * 3 + j].text.substr(0, 10), prefix) << "siblings share the path";
  }
}

TEST(Dvts, SubtreesAreIndependentOfEachOthersScoresAndOfTiming) {
  // Subtree 1's PRM scores are turned upside down and the jobs come back in
  // another order: subtree 0's choices must not change.
  auto subtree_texts = [](bool perturb, uint32_t shuffle) {
    auto st = setup("dvts", 4, 2, 4);
    auto dv = make_dvts(st);
    ScriptHost h;
    Script sc{[](const Job& j) { return pseudo_step(j) + "|"; }};
    sc.prm = [perturb](const Job& j, const std::string& s) {
      float v = prm_score(s);
      return perturb && (j.beam % 4) / 2 == 1 ? 1.0f - v : v;
    };
    sc.shuffle = shuffle;
    auto done = run(*dv, h, sc);
    std::vector<std::vector<std::string>> out(2);
    for (size_t i = 0; i < done.size(); ++i) out[i / 2].push_back(done[i].text);
    return out;
  };
  auto base = subtree_texts(false, 0);
  auto moved = subtree_texts(true, 7);
  EXPECT_EQ(moved[0], base[0]);
  EXPECT_NE(moved[1], base[1]) << "the perturbation should matter to subtree 1 itself";
}

TEST(Dvts, ASubtreeWhoseKeptStepEndsStopsWhileTheOthersGoOn) {
  auto st = setup("dvts", 4, 2, 5);
  auto dv = make_dvts(st);
  ScriptHost h;
  // Subtree 0 (streams 0, 1 at iteration 0): its best candidate ends with EOS.
  Script sc{[](const Job& j) -> std::string {
    if (j.steps_done() == 0 && j.beam == 0) return "p99 \\boxed{7}$";
    if (j.steps_done() == 0 && j.beam == 1) return "p10|";
    if (j.steps_done() == 2) return "the end \\boxed{3} p60|";  // the answer marker
    return pseudo_step(j) + "|";
  }};
  auto done = run(*dv, h, sc);
  int subtree0_jobs = 0, subtree1_jobs = 0;
  for (const Job& j : h.log)
    if (j.gen) ++((j.beam % 4) / 2 == 0 ? subtree0_jobs : subtree1_jobs);
  EXPECT_EQ(subtree0_jobs, 2) << "subtree 0 ended after its first iteration";
  EXPECT_EQ(subtree1_jobs, 6) << "subtree 1 ended at the marker in its third step";
  ASSERT_EQ(done.size(), 4u);
  EXPECT_EQ(done[0].text, "p99 \\boxed{7}");
  EXPECT_EQ(done[1].text, "p10\n\n") << "the sibling it was chosen over";
  EXPECT_EQ(extract_answer(done[3].text), "3");
}

// ---------------------------------------------------------------- requests

Status check(std::function<void(msg::MapWriter&)> fields, msg::SolveParams* out = nullptr,
             msg::SolveParams defaults = {}) {
  msg::MapWriter w;
  w.put("problem", "What is 1 + 1?");
  fields(w);
  auto r = msg::MapReader::parse(w.bytes());
  if (!r.ok()) return r.error();
  msg::SolveParams p = defaults;
  FLASHTTS_TRY(p.read(*r));
  if (out) *out = p;
  return p.validate(msg::Limits{});
}

TEST(Dvts, CandidatesSpeculateAndTheNextCandidatesTakeOverTheKeptOnesSpeculation) {
  UnevenRun fifo = run_uneven("dvts", 4, 4, 0, true);
  EXPECT_EQ(fifo.texts.size(), 8u);
  EXPECT_GT(fifo.spec_jobs, 0);
  EXPECT_GT(fifo.prefix_jobs, 0) << "later candidates continue the kept candidate's speculation";
  for (uint32_t shuffle = 1; shuffle <= 4; ++shuffle)
    EXPECT_EQ(run_uneven("dvts", 4, 4, shuffle, true).texts, fifo.texts) << "order " << shuffle;
  UnevenRun off = run_uneven("dvts", 4, 4, 0, false);
  EXPECT_EQ(off.spec_jobs, 0);
  EXPECT_EQ(off.prefix_jobs, 0);
}

TEST(Dvts, LiveBeamsForkTheKeptCandidatesSequencesAndReleaseTheRest) {
  for (bool speculation : {false, true}) {
    const UnevenRun off = run_uneven("dvts", 4, 4, 0, speculation);
    for (uint32_t shuffle : {0u, 2u}) {
      const UnevenRun on = run_uneven("dvts", 4, 4, shuffle, speculation, /*live=*/true);
      SCOPED_TRACE("speculation " + std::to_string(speculation) + ", order " + std::to_string(shuffle));
      EXPECT_EQ(on.texts, off.texts);
      EXPECT_GT(on.forks, 0);
      EXPECT_TRUE(on.bad_forks.empty()) << on.bad_forks.front();
      EXPECT_GT(on.released, 0);
      EXPECT_LE(on.kept_at_end, 2 * 8 + 8);
    }
  }
}

// Dead branches first (SearchSetup::drop_dead_kv): every beam that is pruned
// or set aside before the last iteration has its jobs named in drop_kv once,
// after they finished (its speculation's too, never a survivor's), and no job names a dropped one as its from_job after
// the drop (with live beams every continuation names its parent's job, so a
// survivor's job dropped would be caught); the search is the same as
// without.
TEST(BeamSearch, DeadBranchesDropTheJobsOfPrunedBeamsOnlyAndTheSearchIsTheSame) {
  struct Case {
    const char* strategy;
    int32_t width, steps;
    size_t dropped;  // without speculation: 2 jobs x beams dropped per iteration x iterations but the last
  };
  for (const Case& c : {Case{"beam_search", 2, 5, 2 * 4 * 4}, Case{"dvts", 4, 4, 2 * (2 * 3) * 3}}) {
    for (bool speculation : {false, true}) {
      const UnevenRun off = run_uneven(c.strategy, c.width, c.steps, 0, speculation);
      EXPECT_TRUE(off.dropped.empty());
      for (bool live : {false, true})
        for (uint32_t shuffle : {0u, 3u}) {
          SCOPED_TRACE(std::string(c.strategy) + ", speculation " + std::to_string(speculation) + ", live " +
                       std::to_string(live) + ", order " + std::to_string(shuffle));
          const UnevenRun on = run_uneven(c.strategy, c.width, c.steps, shuffle, speculation,
                                          UnevenOptions{.live = live, .prune = true, .drop = true});
          EXPECT_EQ(on.texts, off.texts);
          EXPECT_TRUE(on.bad_forks.empty()) << on.bad_forks.front();
          if (!speculation) {
            EXPECT_EQ(on.dropped.size(), c.dropped);
          } else {
            EXPECT_GT(on.dropped.size(), 0u);
          }
          // A pruned beam's speculation is dropped too (each speculation
          // pruned early has at least one job), a survivor's never.
          EXPECT_EQ(on.spec_dropped > 0, speculation);
          if (speculation) {
            EXPECT_GE(on.spec_dropped, on.pruned_early);
          }
          EXPECT_EQ(on.spec_dropped_carried, 0);
          if (live) {
            EXPECT_GT(on.forks, 0);
          }
        }
    }
  }
}

TEST(SolveRequest, NamesTheStrategiesAndChecksTheirOptions) {
  EXPECT_TRUE(check([](auto& w) { w.put("strategy", "beam_search").put("n", 8).put("beam_width", 4); }).ok());
  EXPECT_TRUE(check([](auto& w) { w.put("strategy", "dvts").put("n", 8).put("beam_width", 2); }).ok());
  Status s = check([](auto& w) { w.put("strategy", "mcts"); });
  EXPECT_NE(s.message().find("'strategy' = 'mcts' is not one of: best_of_n, beam_search, dvts"), std::string::npos)
      << s.message();
  s = check([](auto& w) { w.put("strategy", "dvts").put("n", 6).put("beam_width", 4); });
  EXPECT_NE(s.message().find("'n' = 6 must be a multiple of 'beam_width' = 4 for dvts"), std::string::npos)
      << s.message();
  s = check([](auto& w) { w.put("strategy", "beam_search").put("n", 6).put("beam_width", 4); });
  EXPECT_NE(s.message().find("for beam_search"), std::string::npos) << s.message();
  EXPECT_TRUE(check([](auto& w) { w.put("n", 6).put("beam_width", 4); }).ok()) << "best_of_n ignores beam_width";
  s = check([](auto& w) { w.put("strategy", "beam_search").put("lookahead", -1); });
  EXPECT_NE(s.message().find("'lookahead' = -1 is out of range [0, 64]"), std::string::npos) << s.message();
  s = check([](auto& w) { w.put("strategy", "dvts").put("lookahead", 2); });
  EXPECT_NE(s.message().find("'lookahead' = 2 applies only to beam_search, not dvts"), std::string::npos)
      << s.message();
  s = check([](auto& w) { w.put("filter_duplicates", true); });
  EXPECT_NE(s.message().find("'filter_duplicates' applies only to beam_search, not best_of_n"), std::string::npos)
      << s.message();
  s = check([](auto& w) { w.put("strategy", "dvts").put("sort_completed", true); });
  EXPECT_NE(s.message().find("'sort_completed' applies only to beam_search"), std::string::npos) << s.message();
  s = check([](auto& w) { w.put("lookahead", true); });
  EXPECT_FALSE(s.ok()) << "lookahead is an integer";
}

TEST(SolveRequest, ServerBeamSearchDefaultsDoNotApplyToOtherStrategies) {
  msg::SolveParams defaults;
  defaults.lookahead = 2, defaults.filter_duplicates = true, defaults.sort_completed = true;
  msg::SolveParams p;
  ASSERT_TRUE(check([](auto& w) { w.put("strategy", "dvts").put("n", 4).put("beam_width", 2); }, &p, defaults).ok());
  EXPECT_EQ(p.lookahead, 0);
  EXPECT_FALSE(p.filter_duplicates);
  EXPECT_FALSE(p.sort_completed);
  ASSERT_TRUE(check([](auto& w) { w.put("strategy", "beam_search"); }, &p, defaults).ok());
  EXPECT_EQ(p.lookahead, 2);
  EXPECT_TRUE(p.filter_duplicates);
  EXPECT_TRUE(p.sort_completed);
  EXPECT_EQ(p.answer_marker, "\\boxed");
  // The fields travel to the beam manager unchanged.
  msg::MapWriter w;
  p.write(w);
  msg::SolveParams back;
  ASSERT_TRUE(back.read(*msg::MapReader::parse(w.bytes())).ok());
  EXPECT_EQ(back.lookahead, 2);
  EXPECT_TRUE(back.filter_duplicates && back.sort_completed);
  EXPECT_EQ(back.answer_marker, "\\boxed");
}

}  // namespace
}  // namespace flashtts
