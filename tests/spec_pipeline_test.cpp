// Speculative beam extension through the whole pipeline on real sockets
// (policies.speculation; actors/beam_search.cpp, the generator's speculative
// jobs): beams write their next step ahead while stragglers finish, the
// survivors' copies take it over, and nothing is left behind; with live
// beams (policies.live_beams) their sequences are forked, not recomputed.
#include <gtest/gtest.h>

#include <thread>

#include "messages/requests.h"
#include "runtime/client.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

// Weights of the tiny models (~1 MiB) and KV for a few of their jobs.
constexpr double kTightBudgetMb = 1.4;

Config spec_config(const std::string& tag, bool speculation, double max_slowdown, bool live = false,
                   const std::string& scheduling = "fifo") {
  Config c = test::tiny_pipeline_config(test::ipc_endpoint(tag));
  c.step_delimiter = " ";  // the tiny policy writes a space every few tokens
  c.engine.generator_threads = 1;
  c.engine.verifier_threads = 1;
  c.policies.speculation = speculation;
  c.policies.speculation_max_slowdown = max_slowdown;
  c.policies.live_beams = live;
  c.policies.scheduling = scheduling;
  return c;
}

struct Solved {
  std::vector<std::string> texts;               // every completion's
  std::vector<std::vector<int32_t>> step_tokens;  // trace mode: each completion's
  int64_t spec_generated = -1, spec_kept = -1, spec_dropped = -1, steps_reused = -1;
  int64_t pruned_early = -1, pruned_early_tokens = -1;
};

// A search of 8 beams; in trace mode the steps have the given lengths.
Solved solve(Client& c, uint64_t seed, bool trace, const std::string& strategy = "beam_search",
             bool filter_duplicates = false) {
  msg::MapWriter w;
  w.put("problem", "Let a = 5. Let b = a * 3. What is b?").put("strategy", strategy).put("seed", seed);
  w.put("n", 8).put("beam_width", 4).put("max_steps", 4).put("max_tokens_per_step", 32);
  if (filter_duplicates) w.put("filter_duplicates", true);
  w.put("return_completions", true);
  if (trace) {
    msg::MapWriter t;
    t.put("step_tokens", std::vector<int32_t>{3, 6, 12, 30}).put("end_prob", 0.2).put("seed", seed);
    w.put("trace", t);
  }
  Solved out;
  auto f = c.call("solve", w, 120s);
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
  if (!f.ok()) return out;
  std::vector<msg::MapReader> all;
  EXPECT_TRUE(f->body.get("completions", &all).ok());
  for (const auto& m : all) {
    std::string text;
    EXPECT_TRUE(m.get("text", &text).ok());
    out.texts.push_back(text);
    std::vector<int32_t> st;
    if (trace) {
      EXPECT_TRUE(m.get("step_tokens", &st).ok());
    }
    out.step_tokens.push_back(st);
  }
  msg::MapReader st, sp;
  EXPECT_TRUE(f->body.get("stats", &st).ok());
  if (st.get("speculation", &sp).ok()) {
    EXPECT_TRUE(sp.get("tokens_generated", &out.spec_generated).ok());
    EXPECT_TRUE(sp.get("tokens_kept", &out.spec_kept).ok());
    EXPECT_TRUE(sp.get("tokens_dropped", &out.spec_dropped).ok());
    EXPECT_TRUE(sp.get("steps_reused", &out.steps_reused).ok());
    EXPECT_TRUE(sp.get("pruned_early", &out.pruned_early).ok());
    EXPECT_TRUE(sp.get("tokens_pruned_early", &out.pruned_early_tokens).ok());
  }
  return out;
}

// Each GPU actor's KV blocks held by sequences, and the generator's
// speculative-token counter.
struct Held {
  int64_t gen_used = -1, ver_used = -1, gen_spec_tokens = -1;
  int64_t gen_kept = -1, ver_kept = -1, gen_forked = -1, ver_forked = -1;  // live beams
};
Held held(Client& c) {
  Held h;
  auto st = c.call("stats", msg::MapWriter(), 10s);
  EXPECT_TRUE(st.ok());
  if (!st.ok()) return h;
  msg::MapReader actors, g, v;
  EXPECT_TRUE(st->body.get("actors", &actors).ok());
  EXPECT_TRUE(actors.get("generator", &g).ok() && actors.get("verifier", &v).ok());
  EXPECT_TRUE(g.get("kv_blocks_used", &h.gen_used).ok());
  EXPECT_TRUE(v.get("kv_blocks_used", &h.ver_used).ok());
  EXPECT_TRUE(g.get("spec_tokens", &h.gen_spec_tokens).ok()) << "generator stats lack spec_tokens";
  EXPECT_TRUE(g.get("kv_kept", &h.gen_kept).ok() && v.get("kv_kept", &h.ver_kept).ok());
  EXPECT_TRUE(g.get("kept_forked_tokens", &h.gen_forked).ok() && v.get("kept_forked_tokens", &h.ver_forked).ok());
  return h;
}

// held() once the request's Forget has reached the GPU actors (it travels
// beam manager -> scheduler -> actor; the stats query comes from the intake),
// or after 5 s.
Held held_after_forget(Client& c) {
  Held h = held(c);
  for (int i = 0; i < 100 && (h.gen_kept != 0 || h.ver_kept != 0 || h.gen_used != 0 || h.ver_used != 0); ++i) {
    std::this_thread::sleep_for(50ms);
    h = held(c);
  }
  return h;
}

// After the requests of `c` ended: no block used and no sequence kept in
// either engine.
void expect_pools_empty(Client& c) {
  Held h = held_after_forget(c);
  EXPECT_EQ(h.gen_used, 0);
  EXPECT_EQ(h.ver_used, 0);
  EXPECT_EQ(h.gen_kept, 0);
  EXPECT_EQ(h.ver_kept, 0);
}

TEST(SpeculationPipeline, TheSameSeedGivesTheSameSearchRunAfterRunAndThePoolsEmpty) {
  // No cost bound: with one request and enough memory nothing but the
  // lockstep caps how far a beam writes ahead.
  test::Pipeline p(spec_config("spec-same", true, 0.0));
  Client c = p.client();
  for (bool trace : {true, false}) {
    SCOPED_TRACE(trace ? "math-trace steps" : "the tiny policy's own steps");
    Solved a = solve(c, 7, trace);
    Held after_a = held(c);
    Solved b = solve(c, 7, trace);
    Held after_b = held(c);
    ASSERT_EQ(a.texts.size(), 8u);
    EXPECT_EQ(a.texts, b.texts);
    EXPECT_EQ(a.step_tokens, b.step_tokens);
    // What is kept is capped by the lockstep; how much was written past the
    // cap before the stop arrived depends on timing, and is dropped.
    EXPECT_EQ(a.spec_kept, b.spec_kept);
    EXPECT_EQ(a.spec_generated, a.spec_kept + a.spec_dropped);
    if (trace) {
      // Steps of 3 to 30 tokens: the short ones write ahead.
      EXPECT_GT(a.spec_generated, 0);
      EXPECT_GT(a.spec_kept, 0);
    }
    // Every speculative job ended; no sequence holds a block.
    EXPECT_EQ(after_a.gen_used, 0);
    EXPECT_EQ(after_a.ver_used, 0);
    EXPECT_EQ(after_b.gen_used, 0);
    EXPECT_EQ(after_b.ver_used, 0);
    EXPECT_GE(after_b.gen_spec_tokens, a.spec_generated + b.spec_generated);
  }
}

TEST(SpeculationPipeline, DvtsSpeculatesWithinEachSubtreeTheSameWayRunAfterRun) {
  test::Pipeline p(spec_config("spec-dvts", true, 0.0));
  Client c = p.client();
  Solved a = solve(c, 3, true, "dvts");
  Solved b = solve(c, 3, true, "dvts");
  ASSERT_EQ(a.texts.size(), 8u);
  EXPECT_EQ(a.texts, b.texts);
  EXPECT_EQ(a.step_tokens, b.step_tokens);
  EXPECT_EQ(a.spec_kept, b.spec_kept);
  EXPECT_GT(a.spec_generated, 0);
  for (const auto& st : a.step_tokens)
    for (int32_t n : st) EXPECT_TRUE(n == 3 || n == 6 || n == 12 || n == 30) << n;
  Held h = held(c);
  EXPECT_EQ(h.gen_used, 0);
  EXPECT_EQ(h.ver_used, 0);
}

TEST(SpeculationPipeline, OnMathTraceSpeculationKeepsTheSameBeamsAsTheBaseline) {
  // The ranking follows the drawn scores, so with speculation on or off the
  // search keeps the same beams: every completion has the same steps.
  test::Pipeline off(spec_config("spec-same-off", false, 0.05));
  test::Pipeline on(spec_config("spec-same-on", true, 0.05));
  Client a = off.client(), b = on.client();
  for (const char* strategy : {"beam_search", "dvts"}) {
    SCOPED_TRACE(strategy);
    Solved x = solve(a, 11, true, strategy), y = solve(b, 11, true, strategy);
    ASSERT_EQ(x.step_tokens.size(), 8u);
    EXPECT_EQ(x.step_tokens, y.step_tokens);
  }
}

// policies.speculation_prune: beams certain to be pruned before every beam
// is scored drop their speculation at once. Without a cost bound the
// survivors' speculation, and so the search, is the same as with the
// speculation running to the barrier; the pools are empty after each search.
TEST(SpeculationPipeline, BeamsCertainToBePrunedDropTheirSpeculationAndTheSearchIsTheSame) {
  Config keep = spec_config("prune-off", true, 0.0);
  keep.policies.speculation_prune = false;
  test::Pipeline off(keep), on(spec_config("prune-on", true, 0.0));
  Client a = off.client(), b = on.client();
  for (const char* strategy : {"beam_search", "dvts"}) {
    SCOPED_TRACE(strategy);
    int64_t pruned = 0;
    for (uint64_t seed : {3, 7, 11}) {
      SCOPED_TRACE("seed " + std::to_string(seed));
      Solved x = solve(a, seed, true, strategy), y = solve(b, seed, true, strategy);
      ASSERT_EQ(y.texts.size(), 8u);
      EXPECT_EQ(x.texts, y.texts);
      EXPECT_EQ(x.step_tokens, y.step_tokens);
      // No survivor's speculation was dropped: its copies keep the same tokens.
      EXPECT_EQ(x.spec_kept, y.spec_kept);
      EXPECT_EQ(x.steps_reused, y.steps_reused);
      EXPECT_EQ(x.pruned_early, 0);
      EXPECT_LE(y.pruned_early_tokens, y.spec_dropped);
      pruned += y.pruned_early;
      expect_pools_empty(b);
    }
    EXPECT_GT(pruned, 0);
  }
  // With filter_duplicates no beam is certain to be pruned before the
  // selection (a dropped duplicate frees a place).
  Solved d = solve(b, 7, true, "beam_search", /*filter_duplicates=*/true);
  EXPECT_EQ(d.pruned_early, 0);
  EXPECT_EQ(d.texts, solve(a, 7, true, "beam_search", true).texts);
  expect_pools_empty(b);
}

TEST(SpeculationPipeline, OffMeansNoSpeculativeWorkAndTheSameStepLengthsAsTheTable) {
  test::Pipeline p(spec_config("spec-off", false, 0.05));
  Client c = p.client();
  Solved a = solve(c, 7, true);
  EXPECT_EQ(a.spec_generated, -1) << "no speculation stats without speculation";
  EXPECT_EQ(held(c).gen_spec_tokens, 0);
  for (const auto& st : a.step_tokens)
    for (int32_t n : st) EXPECT_TRUE(n == 3 || n == 6 || n == 12 || n == 30) << n;
}

TEST(SpeculationPipeline, StepsWrittenAheadHaveTheirDrawnLengths) {
  // A kept speculation continues to the step's drawn length: every step of
  // every completion is a table entry, whoever wrote which part of it.
  test::Pipeline p(spec_config("spec-len", true, 0.0));
  Client c = p.client();
  for (uint64_t seed : {1, 2, 3}) {
    Solved a = solve(c, seed, true);
    ASSERT_EQ(a.step_tokens.size(), 8u);
    for (const auto& st : a.step_tokens)
      for (int32_t n : st) EXPECT_TRUE(n == 3 || n == 6 || n == 12 || n == 30) << n << " (seed " << seed << ")";
  }
  Held h = held(c);
  EXPECT_EQ(h.gen_used, 0);
  EXPECT_EQ(h.ver_used, 0);
}

// Live beams fork kept sequences instead of finding the context in the
// prefix cache: the searches are the same, and after each one nothing is
// kept and no block is held.
TEST(SpeculationPipeline, LiveBeamsGiveTheSameSearchesAndLeaveNothingKept) {
  for (bool speculation : {false, true}) {
    SCOPED_TRACE(speculation ? "speculation on" : "speculation off");
    test::Pipeline off(spec_config("live-off", speculation, 0.0, false));
    test::Pipeline on(spec_config("live-on", speculation, 0.0, true));
    Client a = off.client(), b = on.client();
    for (const char* strategy : {"beam_search", "dvts"})
      for (bool trace : {true, false}) {
        SCOPED_TRACE(std::string(strategy) + (trace ? ", math-trace steps" : ", the tiny policy's own steps"));
        Solved x = solve(a, 5, trace, strategy), y = solve(b, 5, trace, strategy);
        ASSERT_EQ(y.texts.size(), 8u);
        EXPECT_EQ(x.texts, y.texts);
        EXPECT_EQ(x.step_tokens, y.step_tokens);
        expect_pools_empty(b);
      }
    Held h = held(b), h0 = held(a);
    EXPECT_GT(h.gen_forked, 0);
    EXPECT_GT(h.ver_forked, 0);
    EXPECT_EQ(h0.gen_forked, 0);
  }
}

// Issue 22: the order changes when work runs, never what it computes; the
// pools are back to empty after every search.
TEST(SpeculationPipeline, EveryOrderGivesTheSameSearchesAndLeavesThePoolsEmpty) {
  test::Pipeline base(spec_config("order-fifo", true, 0.0, true, "fifo"));
  Client a = base.client();
  std::vector<Solved> want;
  for (const char* strategy : {"beam_search", "dvts"})
    for (bool trace : {true, false}) want.push_back(solve(a, 9, trace, strategy));
  for (const char* order : {"prefix", "random", "scatter"}) {
    SCOPED_TRACE(order);
    test::Pipeline p(spec_config(std::string("order-") + order, true, 0.0, true, order));
    Client b = p.client();
    auto st = b.call("stats", msg::MapWriter(), 10s);
    ASSERT_TRUE(st.ok());
    msg::MapReader actors, sched, lane;
    std::string name;
    ASSERT_TRUE(st->body.get("actors", &actors).ok() && actors.get("scheduler", &sched).ok());
    ASSERT_TRUE(sched.get("generator", &lane).ok() && lane.get("policy", &name).ok());
    EXPECT_EQ(name, order);
    size_t k = 0;
    for (const char* strategy : {"beam_search", "dvts"})
      for (bool trace : {true, false}) {
        SCOPED_TRACE(std::string(strategy) + (trace ? ", math-trace steps" : ", the tiny policy's own steps"));
        Solved y = solve(b, 9, trace, strategy);
        ASSERT_EQ(y.texts.size(), 8u);
        EXPECT_EQ(want[k].texts, y.texts);
        EXPECT_EQ(want[k].step_tokens, y.step_tokens);
        ++k;
        expect_pools_empty(b);
      }
  }
}

// Issue 23: pools that move while the models serve change when work runs,
// never what it computes; every request ends and the pools are empty after.
TEST(SpeculationPipeline, TheRooflineSplitGivesTheSameSearchesAsTheStaticOne) {
  auto config = [](const std::string& split) {
    // Speculation on: a speculative job a shrinking pool stops goes on from
    // where it stopped.
    Config c = spec_config("split-" + split, true, 0.0, true, "prefix");
    c.policies.memory_split = split;
    c.memory.budget_mb = kTightBudgetMb;
    return c;
  };
  test::Pipeline base(config("static"));
  Client a = base.client();
  std::vector<Solved> want;
  for (const char* strategy : {"beam_search", "dvts"}) want.push_back(solve(a, 5, true, strategy));
  test::Pipeline p(config("roofline"));
  Client b = p.client();
  size_t k = 0;
  for (const char* strategy : {"beam_search", "dvts"}) {
    SCOPED_TRACE(strategy);
    Solved y = solve(b, 5, true, strategy);
    EXPECT_EQ(want[k].texts, y.texts);
    EXPECT_EQ(want[k].step_tokens, y.step_tokens);
    ++k;
    expect_pools_empty(b);
  }
  auto st = b.call("stats", msg::MapWriter(), 10s);
  ASSERT_TRUE(st.ok());
  msg::MapReader actors, arbiter;
  ASSERT_TRUE(st->body.get("actors", &actors).ok() && actors.get("memory_arbiter", &arbiter).ok());
  std::string policy;
  ASSERT_TRUE(arbiter.get("policy", &policy).ok());
  EXPECT_EQ(policy, "roofline");
}

// Under memory pressure the generator stops speculative jobs to make room
// for real work, at moments that depend on timing; without a cost bound a
// speculation stopped short of its cap goes on from where it stopped, so the
// searches are those of a run with ample memory, seed after seed.
TEST(SpeculationPipeline, UnderMemoryPressureSpeculationGivesTheSameSearchesAsWithAmpleMemory) {
  for (const char* order : {"fifo", "prefix"}) {
    SCOPED_TRACE(order);
    auto config = [&](bool tight) {
      Config c = spec_config(std::string(tight ? "pressure-tight-" : "pressure-ample-") + order, true, 0.0, true, order);
      if (tight) c.memory.budget_mb = kTightBudgetMb;
      return c;
    };
    test::Pipeline ample(config(false)), tight(config(true));
    Client a = ample.client(), b = tight.client();
    for (uint64_t seed : {5, 6, 7, 8})
      for (const char* strategy : {"beam_search", "dvts"})
        for (bool trace : {true, false}) {
          SCOPED_TRACE(std::string(strategy) + ", seed " + std::to_string(seed) +
                       (trace ? ", math-trace steps" : ", the tiny policy's own steps"));
          Solved x = solve(a, seed, trace, strategy), y = solve(b, seed, trace, strategy);
          ASSERT_EQ(x.texts.size(), 8u);
          EXPECT_EQ(x.texts, y.texts);
          EXPECT_EQ(x.step_tokens, y.step_tokens);
        }
    expect_pools_empty(b);
  }
}

// Issue 22: freeing what pruned and finished beams wrote (policies.eviction =
// "pruned") changes which cached blocks a tight pool keeps, never what a
// search computes; both engines free blocks, and the pools empty after every
// search.
TEST(SpeculationPipeline, DroppingDeadBranchesGivesTheSameSearchesAndLeavesThePoolsEmpty) {
  for (bool speculation : {false, true}) {
    SCOPED_TRACE(speculation ? "speculation on" : "speculation off");
    auto config = [&](const std::string& eviction) {
      Config c = spec_config("dead-" + eviction + (speculation ? "-spec" : ""), speculation, 0.0, false, "prefix");
      c.policies.eviction = eviction;
      c.memory.budget_mb = kTightBudgetMb;
      return c;
    };
    test::Pipeline lru(config("lru")), pruned(config("pruned"));
    Client a = lru.client(), b = pruned.client();
    for (const char* strategy : {"beam_search", "dvts"})
      for (bool trace : {true, false}) {
        SCOPED_TRACE(std::string(strategy) + (trace ? ", math-trace steps" : ", the tiny policy's own steps"));
        Solved x = solve(a, 7, trace, strategy), y = solve(b, 7, trace, strategy);
        ASSERT_EQ(y.texts.size(), 8u);
        EXPECT_EQ(x.texts, y.texts);
        EXPECT_EQ(x.step_tokens, y.step_tokens);
        expect_pools_empty(b);
      }
    // The actor's blocks dropped, once its records of the last request are
    // gone with its forget (which may still be on its way; at most 5 s).
    auto dropped = [](Client& c, const char* actor) {
      int64_t n = -1, records = -1;
      for (int i = 0; i < 100 && records != 0; ++i) {
        if (i > 0) std::this_thread::sleep_for(50ms);
        auto st = c.call("stats", msg::MapWriter(), 10s);
        EXPECT_TRUE(st.ok());
        msg::MapReader actors, s;
        if (!st.ok() || !st->body.get("actors", &actors).ok() || !actors.get(actor, &s).ok()) break;
        EXPECT_TRUE(s.get("kv_dropped_blocks", &n).ok());
        EXPECT_TRUE(s.get("tails_recorded", &records).ok());
      }
      EXPECT_EQ(records, 0) << actor << ": a request's records go with its forget";
      return n;
    };
    EXPECT_GT(dropped(b, "generator"), 0);
    EXPECT_GT(dropped(b, "verifier"), 0);
    EXPECT_EQ(dropped(a, "generator"), 0);
  }
}

}  // namespace
}  // namespace flashtts
