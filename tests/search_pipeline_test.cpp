// Beam search and DVTS end to end: the six actors on real sockets with the
// tiny random-weight models, a client over ipc://. The tiny policy almost
// never writes "\n\n", so these pipelines use " " as the step delimiter: its
// steps are a few tokens long and a search runs all its iterations.
#include <gtest/gtest.h>

#include "messages/envelope.h"
#include "messages/protocol.h"
#include "runtime/client.h"
#include "runtime/supervisor.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

using test::Pipeline;

Config search_config(const std::string& tag, int32_t threads) {
  Config c = test::tiny_pipeline_config(test::ipc_endpoint(tag));
  c.step_delimiter = " ";
  c.engine.generator_threads = threads;
  c.engine.verifier_threads = threads;
  auto& s = c.defaults.solve;
  s.n = 8, s.beam_width = 4, s.max_steps = 5, s.max_tokens_per_step = 8;
  return c;
}

// A solve's result, and the progress events it streamed, by kind.
struct Solved {
  msg::MapReader result;
  std::map<std::string, int> events;
};

// Sends every request at once (concurrent: their jobs share batches) or one
// after the other; returns their results in the order given.
std::vector<Solved> solve_all(Client& c, std::vector<msg::MapWriter> requests, bool concurrent) {
  std::vector<Solved> out(requests.size());
  std::map<std::string, size_t> ids;
  auto collect = [&](size_t want) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (ids.size() > want && std::chrono::steady_clock::now() < deadline) {
      auto f = c.recv(100ms);
      EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
      if (!f.ok() || !f->has_value() || !ids.count((*f)->id)) continue;
      Solved& s = out[ids[(*f)->id]];
      if ((*f)->type == "progress") {
        std::string kind;
        EXPECT_TRUE((*f)->body.get("kind", &kind).ok());
        ++s.events[kind];
        continue;
      }
      EXPECT_EQ((*f)->type, "result") << (*f)->code << ": " << (*f)->message;
      s.result = (*f)->body;
      ids.erase((*f)->id);
    }
    EXPECT_EQ(ids.size(), want) << "results missing";
  };
  for (size_t i = 0; i < requests.size(); ++i) {
    msg::MapWriter& w = requests[i];
    w.put("problem", "Let a = 5. Let b = a * 3. What is b?").put("stream", true).put("return_completions", true);
    ids[c.send("solve", w)] = i;
    if (!concurrent) collect(0);
  }
  collect(0);
  return out;
}

Solved solve(Client& c, msg::MapWriter fields) { return solve_all(c, {std::move(fields)}, false).front(); }

// What must be byte-identical under one seed, and the scores to compare
// with a tolerance.
struct Outcome {
  std::vector<std::string> texts;  // answer, text, each completion's text and answer
  std::vector<double> scores;      // score, each completion's score
};

Outcome outcome(const msg::MapReader& r) {
  Outcome o;
  std::string answer, text;
  double score = 0;
  EXPECT_TRUE(r.get("answer", &answer).ok() && r.get("text", &text).ok() && r.get("score", &score).ok());
  o.texts = {answer, text};
  o.scores = {score};
  std::vector<msg::MapReader> all;
  EXPECT_TRUE(r.get("completions", &all).ok());
  for (const auto& c : all) {
    std::string t, a;
    double s = 0;
    EXPECT_TRUE(c.get("text", &t).ok() && c.get("answer", &a).ok() && c.get("score", &s).ok());
    o.texts.push_back(t), o.texts.push_back(a), o.scores.push_back(s);
  }
  return o;
}

msg::MapWriter strategy(const std::string& name) {
  msg::MapWriter w;
  w.put("strategy", name).put("seed", uint64_t(5));
  if (name == "beam_search") w.put("lookahead", 1).put("filter_duplicates", true);
  return w;
}

TEST(SearchPipeline, BeamSearchAndDvtsRunEndToEnd) {
  Pipeline p(search_config("search-e2e", 1));
  Client c = p.client();
  for (const std::string name : {"beam_search", "dvts"}) {
    SCOPED_TRACE(name);
    Solved s = solve(c, strategy(name));
    const msg::MapReader& r = s.result;
    std::string got;
    ASSERT_TRUE(r.get("strategy", &got).ok());
    EXPECT_EQ(got, name);
    int32_t width = 0;
    ASSERT_TRUE(r.get("beam_width", &width).ok());
    EXPECT_EQ(width, 4);
    std::vector<msg::MapReader> completions, steps;
    ASSERT_TRUE(r.get("completions", &completions).ok());
    EXPECT_EQ(completions.size(), 8u) << "n completions";
    ASSERT_TRUE(r.get("steps", &steps).ok());
    EXPECT_FALSE(steps.empty());
    for (const auto& c : completions) {
      std::vector<float> ss;
      ASSERT_TRUE(c.get("step_scores", &ss).ok());
      for (float v : ss) EXPECT_TRUE(v >= 0 && v <= 1) << v;
    }
    msg::MapReader st;
    ASSERT_TRUE(r.get("stats", &st).ok());
    int64_t policy_tokens = 0, prm_computed = 0;
    int32_t iterations = 0;
    double goodput = 0, hit_rate = -1;
    ASSERT_TRUE(st.get("policy_tokens", &policy_tokens).ok());
    ASSERT_TRUE(st.get("prm_tokens_computed", &prm_computed).ok());
    ASSERT_TRUE(st.get("iterations", &iterations).ok());
    ASSERT_TRUE(st.get("goodput_tokens_per_s", &goodput).ok());
    ASSERT_TRUE(st.get("prefix_hit_rate", &hit_rate).ok());
    EXPECT_GT(policy_tokens, 0);
    EXPECT_GT(prm_computed, 0);
    EXPECT_GE(iterations, 2) << "the tiny policy writes a space within 8 tokens";
    EXPECT_LE(iterations, 5);
    EXPECT_GT(goodput, 0);
    EXPECT_GT(hit_rate, 0) << "every step after the first reuses its beam's prefix";
    if (name == "beam_search") {
      EXPECT_EQ(s.events["iteration"], iterations);
      EXPECT_EQ(s.events["generated"], 8 * iterations) << "n beams in flight in every iteration";
    } else {
      EXPECT_GE(s.events["iteration"], 2 * 1) << "one per kept step of each of the 2 subtrees";
      EXPECT_EQ(s.events["generated"] % 4, 0) << "beam_width candidates per subtree step";
    }
  }
  // Impossible combinations are refused with a sentence saying why.
  msg::MapWriter bad;
  bad.put("problem", "p").put("strategy", "dvts").put("n", 6).put("beam_width", 4);
  auto e = c.call("solve", bad, 10s);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("bad_request: solve: 'n' = 6 must be a multiple of 'beam_width' = 4 for dvts"),
            std::string::npos)
      << e.error().message;
}

// The same seed gives byte-identical texts across fresh pipelines, across
// 1 vs 2 engine threads, and whether the three requests run one after the
// other or at once (sharing batches): scores too, bit for bit, because the
// CPU kernels are batch-invariant (gpu/cpu/kernels.cpp linear) although a
// step's PRM score is computed in whatever batch its job lands in.
TEST(SearchPipeline, TheSameSeedGivesTheSameResultsAcrossPipelinesAndThreadCounts) {
  const std::vector<std::string> names = {"best_of_n", "beam_search", "dvts"};
  std::map<std::string, std::vector<Outcome>> runs;
  int k = 0;
  for (auto [threads, concurrent] : {std::pair{1, false}, {1, true}, {2, false}, {2, true}}) {
    Pipeline p(search_config("search-seed-" + std::to_string(k++), threads));
    Client c = p.client();
    std::vector<msg::MapWriter> requests;
    for (const auto& name : names) requests.push_back(strategy(name));
    auto solved = solve_all(c, requests, concurrent);
    for (size_t i = 0; i < names.size(); ++i) runs[names[i]].push_back(outcome(solved[i].result));
  }
  for (auto& [name, outs] : runs) {
    SCOPED_TRACE(name);
    for (size_t k = 1; k < outs.size(); ++k) {
      EXPECT_EQ(outs[k].texts, outs[0].texts) << "run " << k;
      ASSERT_EQ(outs[k].scores.size(), outs[0].scores.size());
      double worst = 0;
      for (size_t i = 0; i < outs[0].scores.size(); ++i)
        worst = std::max(worst, std::abs(outs[k].scores[i] - outs[0].scores[i]));
      EXPECT_EQ(worst, 0.0) << "run " << k;
    }
  }
}

}  // namespace
}  // namespace flashtts
