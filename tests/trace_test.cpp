// The math-trace workload (issue 20, actors/trace.h): the length draws, and
// forced step lengths through the whole pipeline on real sockets. The tiny
// policy writes a space every few tokens and " " is the step delimiter here,
// so a step that were not forced would end long before its drawn length.
#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "actors/trace.h"
#include "messages/requests.h"
#include "runtime/client.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

msg::TraceParams table(std::vector<int32_t> steps, double end_prob, uint64_t seed) {
  msg::TraceParams t;
  t.step_tokens = std::move(steps);
  t.end_prob = end_prob;
  t.seed = seed;
  return t;
}

TEST(TraceDraw, IsAPureFunctionOfSeedLineageAndStep) {
  const msg::TraceParams t = table({3, 5, 7, 11, 13}, 0.25, 9);
  for (int32_t i = 0; i < 50; ++i) {
    const TraceDraw a = trace_draw(t, lineage_root(i), i % 7, 64), b = trace_draw(t, lineage_root(i), i % 7, 64);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.ends, b.ends);
  }
  // Another seed changes some draws.
  const msg::TraceParams u = table({3, 5, 7, 11, 13}, 0.25, 10);
  int differ = 0;
  for (int32_t i = 0; i < 50; ++i) differ += trace_draw(t, lineage_root(i), 0, 64).tokens != trace_draw(u, lineage_root(i), 0, 64).tokens;
  EXPECT_GT(differ, 10);
}

TEST(TraceDraw, DrawsEveryTableEntryAndEndsWithTheGivenProbability) {
  const msg::TraceParams t = table({3, 5, 7, 11}, 0.2, 1);
  std::map<int32_t, int> seen;
  int ends = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const TraceDraw d = trace_draw(t, lineage_child(lineage_root(i % 100), i / 100), i % 13, 64);
    ++seen[d.tokens];
    ends += d.ends;
  }
  ASSERT_EQ(seen.size(), 4u) << "only table entries, each of them";
  for (auto [len, count] : seen) EXPECT_NEAR(count, n / 4, n / 20) << len;
  EXPECT_NEAR(double(ends) / n, 0.2, 0.015);
}

TEST(TraceDraw, TheLastAllowedStepAlwaysEndsAndCopyZeroKeepsItsParentsLineage) {
  const msg::TraceParams t = table({4}, 0.01, 3);
  for (int32_t i = 0; i < 20; ++i) {
    EXPECT_TRUE(trace_draw(t, lineage_root(i), 4, 5).ends);
    EXPECT_TRUE(trace_draw(t, lineage_root(i), 9, 5).ends);
  }
  const uint64_t parent = lineage_root(3);
  EXPECT_EQ(lineage_child(parent, 0), parent);
  EXPECT_NE(lineage_child(parent, 1), parent);
  EXPECT_NE(lineage_child(parent, 1), lineage_child(parent, 2));
  EXPECT_NE(lineage_child(lineage_root(1), 1), lineage_child(lineage_root(2), 1));
  EXPECT_NE(lineage_root(0), lineage_root(1));
}

// bench/data's table is what its header says (tools/step_lengths.py).
TEST(TraceTable, TheCommittedMath500TableReadsBackWithItsStatedStats) {
  auto t = read_step_table(std::filesystem::path(FLASHTTS_SOURCE_DIR) / "bench/data/math500_step_lengths.tsv");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 959u);
  const double mean = std::accumulate(t->begin(), t->end(), 0.0) / (double)t->size();
  EXPECT_NEAR(mean, 114.2, 0.05);
  EXPECT_EQ(*std::max_element(t->begin(), t->end()), 918);
  EXPECT_EQ(*std::min_element(t->begin(), t->end()), 1);
  EXPECT_FALSE(read_step_table("/nonexistent/table.tsv").ok());
}

// ------------------------------------------------------------ the pipeline

const std::vector<int32_t> kTable = {9, 14, 20, 27};  // longer than the tiny policy's space-delimited steps

struct Variant {
  int32_t threads = 1;
  int32_t max_batch = 256;
  int32_t block_size = 16;
  int32_t prefill_chunk = 512;
};

Config trace_config(const std::string& tag, const Variant& v) {
  Config c = test::tiny_pipeline_config(test::ipc_endpoint(tag));
  c.step_delimiter = " ";
  c.engine.generator_threads = v.threads;
  c.engine.verifier_threads = v.threads;
  c.engine.max_batch = v.max_batch;
  c.memory.block_size = v.block_size;
  c.engine.prefill_chunk = v.prefill_chunk;
  return c;
}

struct TraceRun {
  std::vector<std::vector<int32_t>> step_tokens;  // each completion's
  std::vector<int32_t> tokens;                    // each completion's whole length
  std::vector<std::string> finish;
  int64_t policy_tokens = 0;
};

// "beam_search+lookahead" is beam_search with one greedy look-ahead step.
TraceRun solve_trace(Client& c, std::string strategy) {
  const bool lookahead = strategy == "beam_search+lookahead";
  if (lookahead) strategy = "beam_search";
  msg::MapWriter trace;
  trace.put("step_tokens", kTable).put("end_prob", 0.3).put("seed", uint64_t(42));
  msg::MapWriter w;
  w.put("problem", "Let a = 5. Let b = a * 3. What is b?").put("strategy", strategy).put("seed", uint64_t(5));
  w.put("n", 8).put("beam_width", 4).put("max_steps", 5).put("max_tokens_per_step", 32);
  w.put("return_completions", true).put("trace", trace);
  if (lookahead) w.put("lookahead", 1);
  TraceRun out;
  auto f = c.call("solve", w, 120s);
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
  if (!f.ok()) return out;
  std::vector<msg::MapReader> all;
  EXPECT_TRUE(f->body.get("completions", &all).ok());
  for (const auto& m : all) {
    std::vector<int32_t> st;
    int32_t n = 0;
    std::string finish;
    EXPECT_TRUE(m.get("step_tokens", &st).ok() && m.get("tokens", &n).ok() && m.get("finish", &finish).ok());
    out.step_tokens.push_back(st), out.tokens.push_back(n), out.finish.push_back(finish);
  }
  msg::MapReader st;
  EXPECT_TRUE(f->body.get("stats", &st).ok() && st.get("policy_tokens", &out.policy_tokens).ok());
  return out;
}

// best_of_n's beam i is lineage_root(i): its steps are exactly the draws.
std::vector<int32_t> expected_best_of_n(int32_t beam) {
  const msg::TraceParams t = table(kTable, 0.3, 42);
  std::vector<int32_t> out;
  for (int32_t step = 0;; ++step) {
    const TraceDraw d = trace_draw(t, lineage_root(beam), step, 5);
    out.push_back(d.tokens);
    if (d.ends) return out;
  }
}

TEST(TracePipeline, EveryVariantGetsIdenticalStepLengthsAndIdenticalWork) {
  const std::vector<std::string> names = {"best_of_n", "beam_search", "beam_search+lookahead", "dvts"};
  const std::vector<Variant> variants = {{1, 256, 16, 512}, {2, 1, 32, 512}, {1, 3, 8, 7}};
  std::map<std::string, std::vector<TraceRun>> runs;
  for (size_t k = 0; k < variants.size(); ++k) {
    test::Pipeline p(trace_config("trace-" + std::to_string(k), variants[k]));
    Client c = p.client();
    for (const auto& name : names) runs[name].push_back(solve_trace(c, name));
  }
  for (const auto& [name, rs] : runs) {
    SCOPED_TRACE(name);
    const TraceRun& r0 = rs[0];
    ASSERT_EQ(r0.step_tokens.size(), 8u) << "n completions";
    for (size_t i = 0; i < r0.step_tokens.size(); ++i) {
      const auto& st = r0.step_tokens[i];
      ASSERT_FALSE(st.empty());
      EXPECT_LE(st.size(), 5u) << "at most max_steps";
      // Every step ended exactly at a drawn length; the steps make the text.
      for (int32_t n : st) EXPECT_NE(std::find(kTable.begin(), kTable.end(), n), kTable.end()) << n;
      EXPECT_EQ(std::accumulate(st.begin(), st.end(), 0), r0.tokens[i]);
      EXPECT_EQ(r0.finish[i], "forced");
      if (name == "best_of_n") {
        EXPECT_EQ(st, expected_best_of_n((int32_t)i)) << "beam " << i;
      }
    }
    if (name == "best_of_n") {
      EXPECT_EQ(r0.policy_tokens, std::accumulate(r0.tokens.begin(), r0.tokens.end(), int64_t(0)));
    }
    EXPECT_GT(r0.policy_tokens, 0);
    for (size_t k = 1; k < rs.size(); ++k) {
      EXPECT_EQ(rs[k].step_tokens, r0.step_tokens) << "variant " << k;
      EXPECT_EQ(rs[k].policy_tokens, r0.policy_tokens) << "variant " << k;
    }
  }
}

TEST(TracePipeline, ARequestWithALengthOverTheStepLimitIsRefused) {
  test::Pipeline p(trace_config("trace-bad", {}));
  Client c = p.client();
  msg::MapWriter trace;
  trace.put("step_tokens", std::vector<int32_t>{5, 40}).put("end_prob", 0.3);
  msg::MapWriter w;
  w.put("problem", "p").put("max_tokens_per_step", 32).put("trace", trace);
  auto e = c.call("solve", w, 10s);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'trace.step_tokens' holds 40"), std::string::npos) << e.error().message;
  msg::MapWriter zero;
  zero.put("step_tokens", std::vector<int32_t>{5}).put("end_prob", 0.0);
  w = msg::MapWriter();
  w.put("problem", "p").put("trace", zero);
  e = c.call("solve", w, 10s);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'trace.end_prob' must be in (0, 1]"), std::string::npos) << e.error().message;
}

}  // namespace
}  // namespace flashtts
