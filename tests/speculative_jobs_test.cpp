// The generator's speculative jobs, through its messages only (as
// tests/generator_test.cpp): test-owned sockets stand in for the scheduler,
// the memory arbiter and the intake; the model is a small random Qwen2 folder
// written by flashtts-mkmodel, large enough that a decode row has a cost the
// row-cost model can measure. Speculative jobs run behind real ones, are
// stopped for them, run to a StopJobs point, and continue a prefix exactly as
// an uninterrupted job would.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "actors/generator.h"
#include "gpu/generate.h"
#include "messages/internal.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int64_t kBytesPerToken = 2 * 4 * 2 * 32 * 4;  // K,V * layers * kv heads * head_dim * f32
constexpr int64_t kBlockBytes = kBytesPerToken * 16;
// KV for every job a test runs at once to its end (unless a test means the
// pool to run short): no speculative job is stopped for want of blocks.
constexpr int64_t kPool = 64 << 20;

const fs::path& model_dir() {
  return test::random_model("speculative-jobs-qwen2", "--arch qwen2 --hidden 128 --layers 4 --heads 4 --kv-heads 2"
                                                      " --intermediate 512 --vocab 512 --seed 9");
}
const Tokenizer& tokenizer() { return test::model_tokenizer(model_dir()); }
std::vector<int32_t> encode(const std::string& text) { return tokenizer().encode(text); }

// generate() on a fresh engine: what an uninterrupted job gives.
GenerateResult reference(const msg::GenJob& j) { return test::reference_generate(model_dir(), j); }

using test::stat;

// A generator with test sockets at its peers' endpoints.
struct Harness : test::EngineActorHarnessOf<GeneratorOptions> {
  Harness()
      : EngineActorHarnessOf("speculative-jobs-test", "generator", run_generator, model_dir(), kBytesPerToken) {}

  // No cost bound unless a test sets one.
  GeneratorOptions options() const {
    GeneratorOptions o = EngineActorHarnessOf::options();
    o.speculation_max_slowdown = 0;
    return o;
  }

  std::vector<msg::GenDone> done(size_t n) { return test::recv_messages<msg::GenDone>(scheduler, n, 20s); }

  // Waits for a gen_progress of `job_id` (others are skipped).
  bool progress_of(uint64_t job_id) {
    for (int i = 0; i < 1000; ++i) {
      auto p = test::recv_message<msg::GenProgress>(scheduler, 10s);
      if (!p) return false;
      if (p->job_id == job_id) return true;
    }
    return false;
  }
};

double stat_f(const msg::MapReader& m, const char* key) {
  double v = -2;
  EXPECT_TRUE(m.get(key, &v).ok()) << key;
  return v;
}

// Every job left, and no KV block is held.
void expect_idle(Harness& h) {
  auto st = h.stats();
  EXPECT_EQ(stat(st, "running"), 0);
  EXPECT_EQ(stat(st, "queued"), 0);
  EXPECT_EQ(stat(st, "kv_blocks_used"), 0);
}

msg::GenJob job(uint64_t id, const std::string& prompt, int32_t max_tokens, bool speculative = false,
                double temperature = 0.0, uint64_t seed = 0) {
  msg::GenJob j;
  j.job_id = id;
  j.rid = 1;
  j.beam = (int32_t)id;
  j.tokens = encode(prompt);
  j.max_tokens = max_tokens;
  j.temperature = temperature;
  j.seed = seed;
  j.stop_at_delimiter = false;
  j.speculative = speculative;
  return j;
}

// A speculative job that runs until stopped: EOS and the delimiter ignored.
msg::GenJob endless(uint64_t id, const std::string& prompt) {
  msg::GenJob j = job(id, prompt, 3000, /*speculative=*/true, 0.8, 3);
  j.forced_tokens = 3000;
  j.report_every = 1;
  return j;
}

const msg::GenDone& by_id(const std::vector<msg::GenDone>& d, uint64_t id) {
  for (const msg::GenDone& g : d)
    if (g.job_id == id) return g;
  ADD_FAILURE() << "no gen_done of job " << id;
  static msg::GenDone none;
  return none;
}

TEST(SpeculativeJobs, ASpeculativeJobWaitsBehindARealJobThatArrivedAfterItWhenTheBatchIsFull) {
  Harness h;
  GeneratorOptions o = h.options();
  o.max_batch = 1;
  h.start_granted(kPool, o);
  h.send(job(1, "A real job first:", 30));
  h.send(job(2, "A speculative one:", 10, /*speculative=*/true));
  h.send(job(3, "Then real work again:", 10));
  auto d = h.done(3);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].job_id, 1u);
  EXPECT_EQ(d[1].job_id, 3u) << "the real job passed the speculative one in the queue";
  EXPECT_EQ(d[2].job_id, 2u);
  EXPECT_NE(d[2].finish, "stopped") << "it was never admitted ahead of real work, so never stopped";
  EXPECT_EQ(d[2].tokens, reference(job(2, "A speculative one:", 10)).tokens);
  auto st = h.stats();
  EXPECT_EQ(stat(st, "spec_jobs"), 1);
  EXPECT_EQ(stat(st, "spec_stopped"), 0);
  EXPECT_EQ(stat(st, "spec_tokens"), (int64_t)d[2].tokens.size());
  expect_idle(h);
}

TEST(SpeculativeJobs, ARealJobArrivingWhileSpeculativeJobsFillTheBatchIsAdmittedInTheNextIteration) {
  Harness h;
  GeneratorOptions o = h.options();
  o.max_batch = 2;
  h.start_granted(kPool, o);
  msg::GenJob s1 = endless(1, "First speculation:"), s2 = endless(2, "Second speculation:");
  h.send(s1);
  h.send(s2);
  ASSERT_TRUE(h.progress_of(2));  // both run
  msg::GenJob r = job(3, "Real work:", 8);
  r.report_every = 1;
  h.send(r);

  // In arrival order: s2 stopped (the newest), then in the very next pass r's
  // first token, beside at most one more token of s1.
  std::optional<msg::GenDone> stopped, real_done;
  int s1_tokens_between = 0;
  bool r_started = false;
  while (!real_done) {
    auto env = test::recv_envelope(h.scheduler, 20s);
    ASSERT_TRUE(env.has_value());
    if (env->type == msg::GenDone::kType) {
      msg::GenDone g = msg::decode<msg::GenDone>(*env).value();
      ASSERT_NE(g.job_id, 1u) << "the older speculative job kept running";
      if (g.job_id == 2) stopped = g;
      if (g.job_id == 3) real_done = g;
    } else if (env->type == msg::GenProgress::kType) {
      msg::GenProgress p = msg::decode<msg::GenProgress>(*env).value();
      if (p.job_id == 3 && !r_started) {
        ASSERT_TRUE(stopped.has_value()) << "the real job ran before a speculative one made room";
        r_started = true;
      }
      if (p.job_id == 1 && stopped && !r_started) ++s1_tokens_between;
    }
  }
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(stopped->finish, "stopped");
  EXPECT_LE(s1_tokens_between, 1) << "the real job waited for more than one iteration";
  ASSERT_FALSE(stopped->tokens.empty());
  // The tokens it had are the uninterrupted job's.
  msg::GenJob uninterrupted = s2;
  uninterrupted.max_tokens = (int32_t)stopped->tokens.size();
  GenerateResult ref = reference(uninterrupted);
  ASSERT_LE(ref.tokens.size(), stopped->tokens.size());
  EXPECT_EQ(std::vector<int32_t>(stopped->tokens.begin(), stopped->tokens.begin() + (ptrdiff_t)ref.tokens.size()),
            ref.tokens);
  EXPECT_EQ(stopped->text, tokenizer().decode(stopped->tokens, true));
  EXPECT_EQ(real_done->tokens, reference(r).tokens);
  EXPECT_EQ(real_done->n_preempted, 0);

  h.send(msg::StopJobs{1, {1}, {0}});
  auto d = h.done(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].job_id, 1u);
  EXPECT_EQ(d[0].finish, "stopped");
  auto st = h.stats();
  EXPECT_EQ(stat(st, "spec_stopped"), 2);
  EXPECT_EQ(stat(st, "spec_tokens"), (int64_t)(stopped->tokens.size() + d[0].tokens.size()));
  expect_idle(h);
}

TEST(SpeculativeJobs, StopJobsEndsARunningJobAtItsPointOrAtOnceAndIgnoresUnknownIds) {
  Harness h;
  h.start_granted(kPool, h.options());
  // A point far ahead: it runs to exactly that many tokens.
  constexpr int32_t kPoint = 1000;
  h.send(endless(1, "Run to a point:"));
  ASSERT_TRUE(h.progress_of(1));
  h.send(msg::StopJobs{1, {1, 999}, {kPoint, 5}});
  h.send(msg::StopJobs{2, {1}, {0}});  // another request's job 1: not this one
  auto d = h.done(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].job_id, 1u);
  EXPECT_EQ(d[0].finish, "stopped");
  EXPECT_EQ(d[0].tokens.size(), size_t(kPoint));
  EXPECT_EQ(d[0].text, tokenizer().decode(d[0].tokens, true));

  // A point it already holds (1), and 0: at once, with the tokens it has.
  h.send(endless(2, "Stop at once:"));
  h.send(endless(3, "Stop now:"));
  ASSERT_TRUE(h.progress_of(3));
  h.send(msg::StopJobs{1, {2, 3}, {1, 0}});
  d = h.done(2);
  ASSERT_EQ(d.size(), 2u);
  for (const msg::GenDone& g : d) {
    EXPECT_EQ(g.finish, "stopped");
    EXPECT_GE(g.tokens.size(), 1u);
    EXPECT_LT(g.tokens.size(), size_t(kPoint)) << "stopped long after the message";
  }

  // A job that arrives with its StopJobs runs at least to the point: to
  // exactly it when the actor reads both messages before the job holds 5
  // tokens, with what it has when the passes of a tiny model between the
  // two reads gave it more (the beam manager keeps min(tokens, point)).
  h.send(endless(4, "Just arrived:"));
  h.send(msg::StopJobs{1, {4}, {5}});
  d = h.done(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].finish, "stopped");
  EXPECT_GE(d[0].tokens.size(), 5u);

  EXPECT_FALSE(test::recv_message<msg::GenDone>(h.scheduler, 300ms).has_value()) << "an unknown id was answered";
  auto st = h.stats();
  EXPECT_EQ(stat(st, "spec_jobs"), 4);
  EXPECT_EQ(stat(st, "spec_stopped"), 4);
  expect_idle(h);
}

TEST(SpeculativeJobs, WhenKvRunsShortSpeculativeJobsAreStoppedBeforeAnyRealJobIsPreempted) {
  Harness h;
  // 8 blocks of 16 tokens: the two real jobs grow to 3 blocks each, the two
  // speculative ones would take everything left and more.
  h.start_granted(8 * kBlockBytes, h.options());
  std::vector<msg::GenJob> real = {job(1, "Real one: a b", 40, false, 0.0), job(2, "Real two: c d", 40, false, 0.9, 4)};
  for (const auto& j : real) h.send(j);
  h.send(endless(3, "Spec one: e f"));
  h.send(endless(4, "Spec two: g h"));
  auto d = h.done(4);
  ASSERT_EQ(d.size(), 4u);
  for (const msg::GenJob& j : real) {
    const msg::GenDone& g = by_id(d, j.job_id);
    EXPECT_EQ(g.n_preempted, 0) << "job " << j.job_id;
    EXPECT_EQ(g.tokens, reference(j).tokens) << "job " << j.job_id;
  }
  for (uint64_t id : {3u, 4u}) {
    EXPECT_EQ(by_id(d, id).finish, "stopped");
    EXPECT_EQ(by_id(d, id).n_preempted, 0);
  }
  // The newest speculative job made room first.
  auto at = [&](uint64_t id) {
    return std::find_if(d.begin(), d.end(), [&](const msg::GenDone& g) { return g.job_id == id; });
  };
  EXPECT_LT(at(4), at(3));
  auto st = h.stats();
  EXPECT_EQ(stat(st, "preemptions"), 0);
  EXPECT_EQ(stat(st, "spec_stopped"), 2);
  expect_idle(h);
}

TEST(SpeculativeJobs, APrefixCountsAsGeneratedAndIsInTheTokensAndText) {
  Harness h;
  h.start_granted(kPool, h.options());
  constexpr int32_t kForced = 12;
  msg::GenJob j = job(1, "Continue this:", 100);
  j.prefix = encode(" seven and");
  ASSERT_GE(j.prefix.size(), 2u);
  j.forced_tokens = kForced;
  h.send(j);
  msg::GenJob bad = job(2, "Broken:", 4);
  bad.prefix = {1 << 20};
  h.send(bad);
  auto d = h.done(2);
  ASSERT_EQ(d.size(), 2u);
  const msg::GenDone& g = by_id(d, 1);
  EXPECT_EQ(g.finish, "forced");
  ASSERT_EQ(g.tokens.size(), size_t(kForced));
  EXPECT_EQ(std::vector<int32_t>(g.tokens.begin(), g.tokens.begin() + (ptrdiff_t)j.prefix.size()), j.prefix);
  EXPECT_EQ(g.text, tokenizer().decode(g.tokens, true));
  EXPECT_EQ(g.n_context, (int32_t)j.tokens.size());
  // The rest is what the context with the prefix continues with.
  msg::GenJob whole = j;
  whole.tokens.insert(whole.tokens.end(), j.prefix.begin(), j.prefix.end());
  whole.max_tokens = kForced - (int32_t)j.prefix.size();
  GenerateResult ref = reference(whole);
  EXPECT_EQ(std::vector<int32_t>(g.tokens.begin() + (ptrdiff_t)j.prefix.size(),
                                 g.tokens.begin() + (ptrdiff_t)(j.prefix.size() + ref.tokens.size())),
            ref.tokens);
  EXPECT_EQ(by_id(d, 2).finish, "error");
  EXPECT_NE(by_id(d, 2).error.find("outside the vocabulary"), std::string::npos) << by_id(d, 2).error;
  expect_idle(h);
}

TEST(SpeculativeJobs, AJobWithAPrefixSamplesExactlyAsTheUninterruptedJob) {
  Harness h;
  h.start_granted(kPool, h.options());
  constexpr int32_t kTokens = 24, kKept = 9;
  msg::GenJob whole = job(1, "Sample a while:", kTokens, /*speculative=*/true, 0.9, 17);
  whole.top_p = 0.95;
  h.send(whole);
  auto first = h.done(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_GT(first[0].tokens.size(), size_t(kKept)) << "EOS came too early for this seed";

  msg::GenJob rest = whole;
  rest.job_id = 2;
  rest.prefix.assign(first[0].tokens.begin(), first[0].tokens.begin() + kKept);
  h.send(rest);
  auto second = h.done(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].tokens, first[0].tokens);
  EXPECT_EQ(second[0].finish, first[0].finish);
  EXPECT_EQ(second[0].text, first[0].text);
  auto st = h.stats();
  // Only sampled tokens count: the prefix was sampled by the first job.
  EXPECT_EQ(stat(st, "spec_tokens"), (int64_t)(2 * first[0].tokens.size() - kKept));
  expect_idle(h);
}

// Warms the row-cost model with passes of 1 to 8 rows (8 real jobs of 4 to
// 32 tokens), then runs a real job with a speculative one beside it.
struct BoundRun {
  msg::MapReader stats;
  std::optional<msg::GenDone> spec;  // set when the speculative job ended by itself
};

BoundRun run_with_bound(double max_slowdown) {
  Harness h;
  GeneratorOptions o = h.options();
  o.speculation_max_slowdown = max_slowdown;
  BoundRun out;
  h.start_granted(kPool, o);
  for (int i = 0; i < 8; ++i) h.send(job(10 + i, "Warm up " + std::to_string(i) + ":", 4 * (i + 1)));
  EXPECT_EQ(h.done(8).size(), 8u);
  auto warm = h.stats();
  EXPECT_NE(stat_f(warm, "row_cost_a_ms"), -1.0) << "the model is known (a may be a little below 0)";
  EXPECT_GT(stat_f(warm, "row_cost_b_ms"), 0.0) << "a row costs time";
  EXPECT_EQ(stat(warm, "spec_held"), 0);

  h.send(job(1, "Real work:", 40));
  h.send(job(2, "Speculation:", 20, /*speculative=*/true));
  auto real = h.done(1);
  EXPECT_EQ(real.size(), 1u);
  if (real.empty()) return out;
  if (real[0].job_id == 2) {  // the speculative one ran beside the real one and ended first
    out.spec = real[0];
    real = h.done(1);
  } else if (auto s = test::recv_message<msg::GenDone>(h.scheduler, 300ms)) {
    out.spec = *s;  // it ran and ended after the real one
  }
  if (!out.spec) {
    // Held back the whole time (the idle pass's fixed cost bounds it too):
    // a StopJobs ends it at once with no tokens.
    h.send(msg::StopJobs{1, {2}, {10}});
    auto d = h.done(1);
    EXPECT_EQ(d.size(), 1u);
    if (!d.empty()) {
      EXPECT_EQ(d[0].job_id, 2u);
      EXPECT_EQ(d[0].finish, "stopped");
      EXPECT_TRUE(d[0].tokens.empty());
    }
  }
  out.stats = h.stats();
  expect_idle(h);
  return out;
}

TEST(SpeculativeJobs, ATightCostBoundHoldsSpeculativeJobsBackWhileRealWorkRunsAndNoBoundDoesNot) {
  BoundRun tight = run_with_bound(1e-6);
  EXPECT_FALSE(tight.spec.has_value()) << "the speculative job ran: " << tight.spec->finish;
  EXPECT_GT(stat(tight.stats, "spec_held"), 0);
  EXPECT_EQ(stat(tight.stats, "spec_tokens"), 0);

  BoundRun free = run_with_bound(0);
  ASSERT_TRUE(free.spec.has_value());
  EXPECT_NE(free.spec->finish, "stopped");
  EXPECT_EQ(stat(free.stats, "spec_held"), 0);
  EXPECT_EQ(stat(free.stats, "spec_tokens"), (int64_t)free.spec->tokens.size());
}

}  // namespace
}  // namespace flashtts
