// The roofline memory split (actors/roofline_split.h), its demand window
// (actors/memory_demand.h), and the memory arbiter moving memory through its
// messages: a shrink first, the grow once the shrinking model answered.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "actors/memory_arbiter.h"
#include "actors/memory_demand.h"
#include "actors/roofline_split.h"
#include "actors/weights_report.h"
#include "messages/internal.h"
#include "runtime/base/actor.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

// Round numbers of the shape of a 1.5B policy and a 7B PRM in bf16 on a
// 24 GB card: ~1 TB/s, ~150 TFLOP/s achieved, 5 ms per pass.
ModelCost cost(double params, double kv_per_token, bool prm) {
  ModelCost c;
  c.params = params, c.weight_bytes = 2 * params, c.kv_bytes_per_token = kv_per_token;
  c.layer_params = 0.85 * params, c.hidden = prm ? 3584 : 1536;
  (prm ? c.prm_head_params : c.lm_head_params) = prm ? 3584.0 * 3584 : 1536.0 * 151936;
  c.attn_flops_per_pair = 4.0 * 28 * (prm ? 28 : 12) * 128;
  return c;
}
const LatencyConstants kCard{5e-3, 1.0 / 1e12, 1.0 / 150e12};

ModelDemand generation(double jobs, double ctx) {
  ModelDemand d;
  d.jobs = jobs, d.ctx_tokens = ctx, d.new_tokens = 100, d.sharing = 1.5, d.min_tokens = (int64_t)ctx + 512;
  d.cost = cost(1.5e9, 28672, false), d.latency = kCard;
  return d;
}
ModelDemand scoring(double jobs, double ctx) {
  ModelDemand d;
  d.jobs = jobs, d.ctx_tokens = ctx, d.new_tokens = 120, d.sharing = 1.5, d.min_tokens = (int64_t)ctx;
  d.cost = cost(7e9, 57344, true), d.latency = kCard;
  return d;
}

// 4 GiB of KV between a generator and a verifier of those shapes.
MemoryState state(double gen_share, ModelDemand gen, ModelDemand ver) {
  MemoryState s;
  s.kv_bytes = 4ll << 30;
  s.generator = {3'000'000'000, 28672, 16};
  s.verifier = {14'000'000'000, 57344, 16};
  s.current.generator_kv_bytes = (int64_t)(gen_share * (double)s.kv_bytes);
  s.current.verifier_kv_bytes = s.kv_bytes - s.current.generator_kv_bytes;
  s.gen = gen, s.ver = ver;
  return s;
}

double share(const MemorySplit& s) {
  return (double)s.generator_kv_bytes / (double)(s.generator_kv_bytes + s.verifier_kv_bytes);
}

TEST(RooflineSplit, PredictionsFallAsThePoolGrowsAndAreInfiniteBelowTheLargestJob) {
  const ModelDemand g = generation(64, 1200), v = scoring(64, 1300);
  EXPECT_TRUE(std::isinf(predict_generation(g, g.min_tokens - 1)));
  EXPECT_TRUE(std::isinf(predict_scoring(v, v.min_tokens - 1)));
  double last_g = INFINITY, last_v = INFINITY;
  for (int64_t tokens = 2048; tokens <= 200'000; tokens += 2048) {
    const double tg = predict_generation(g, tokens), tv = predict_scoring(v, tokens);
    EXPECT_LE(tg, last_g * (1 + 1e-12)) << tokens;
    EXPECT_LE(tv, last_v * (1 + 1e-12)) << tokens;
    last_g = tg, last_v = tv;
  }
  // Past what every job needs, more memory buys nothing.
  EXPECT_DOUBLE_EQ(predict_generation(g, 1'000'000), predict_generation(g, 2'000'000));
}

TEST(RooflineSplit, MovesTowardTheModelWhoseDemandRose) {
  RooflineSplit p(0.75, RooflineOptions{});
  // Few beams to extend, many long scoring jobs: the verifier's pool is what limits.
  auto to_ver = p.rebalance(state(0.75, generation(8, 1000), scoring(256, 2000)));
  ASSERT_TRUE(to_ver.has_value()) << p.last_reason();
  EXPECT_LT(share(*to_ver), 0.75) << p.last_reason();
  // Then the generator's work rises and the verifier's falls: back the other way.
  auto to_gen = p.rebalance(state(share(*to_ver), generation(256, 3000), scoring(8, 1000)));
  ASSERT_TRUE(to_gen.has_value()) << p.last_reason();
  EXPECT_GT(share(*to_gen), share(*to_ver)) << p.last_reason();
  EXPECT_EQ(to_gen->generator_kv_bytes + to_gen->verifier_kv_bytes, 4ll << 30);
}

// The verifier's pool at the default split (25% of 4 GiB, 57,344 bytes a
// token) and a scoring demand whose working set (jobs x ctx / sharing) is 5%
// larger than it.
constexpr int64_t kVerPool = (1ll << 30) / 57344 / 16 * 16;
ModelDemand scoring_just_over_the_pool() { return scoring(64, 1.05 * kVerPool * 1.5 / 64); }

TEST(RooflineSplit, TheMissesMeasuredAtThePoolsSizeFitWhatASmallerOrLargerPoolLoses) {
  ModelDemand v = scoring_just_over_the_pool();
  const double u = v.jobs * v.ctx_tokens / v.sharing;
  const double none = predict_scoring(v, (int64_t)(2 * u));  // nothing lost
  // Not measured: the linear model, a pool short by 5% loses 5%.
  const double linear = predict_scoring(v, kVerPool);
  EXPECT_GT(linear, none);
  // Measured as the linear model says: the same prediction.
  v.miss_pool_tokens = kVerPool, v.miss_tokens = (u - (double)kVerPool) / v.jobs;
  EXPECT_NEAR(predict_scoring(v, kVerPool), linear, 1e-9);
  // A thrashing cache loses the whole working set at that pool, and every
  // pool below the working set loses at least as much as the linear model
  // says; at or above it, nothing.
  v.miss_tokens = u / v.jobs;
  const double thrash = predict_scoring(v, kVerPool);
  EXPECT_GT(thrash - none, 10 * (linear - none));
  for (int64_t c = kVerPool / 2; c < (int64_t)u; c += 512) {
    ModelDemand lin = v;
    lin.miss_pool_tokens = 0;
    EXPECT_GE(predict_scoring(v, c), predict_scoring(lin, c)) << c;
  }
  EXPECT_DOUBLE_EQ(predict_scoring(v, (int64_t)u + 16), none);
  // Fewer misses than the linear model's: the working set is smaller than
  // estimated (pool + misses), and a larger pool loses less than the linear
  // model says.
  v.miss_tokens = 0.01 * u / v.jobs;
  EXPECT_LT(predict_scoring(v, kVerPool), linear);
  ModelDemand unmeasured = v;
  unmeasured.miss_pool_tokens = 0;
  const int64_t bigger = kVerPool + (int64_t)(0.02 * u);
  EXPECT_LT(predict_scoring(v, bigger), predict_scoring(unmeasured, bigger));
  // Misses at a pool the estimate says holds everything: the working set is
  // larger than estimated, and a smaller pool loses more.
  v.miss_pool_tokens = (int64_t)(2 * u), v.miss_tokens = 0.2 * u / v.jobs;
  EXPECT_GT(predict_scoring(v, (int64_t)(2 * u)), none);
  EXPECT_GT(predict_scoring(v, (int64_t)u), predict_scoring(v, (int64_t)(2 * u)));
}

// Shared prefixes evicted between the jobs that share them are computed
// again by each: the misses can exceed the whole estimated working set. Then
// the estimate is too small, not the cache thrashing: the prediction at the
// measured pool is what was measured, and more memory saves misses.
TEST(RooflineSplit, MissesBeyondTheWholeWorkingSetMakeItLargerAndMemorySavesThem) {
  ModelDemand v = scoring_just_over_the_pool();
  const double u = v.jobs * v.ctx_tokens / v.sharing;
  const double none = predict_scoring(v, (int64_t)(4 * u));
  v.miss_pool_tokens = kVerPool, v.miss_tokens = 2 * u / v.jobs;
  // Each half working set more saves as much (a linear loss, a prefill
  // bound by compute), down to nothing at the pool plus the misses.
  const int64_t half = (int64_t)(0.5 * u);
  const double at0 = predict_scoring(v, kVerPool), at1 = predict_scoring(v, kVerPool + half),
               at2 = predict_scoring(v, kVerPool + 2 * half);
  EXPECT_GT(at0 - at1, 0);
  EXPECT_NEAR(at0 - at1, at1 - at2, 1e-3 * (at0 - at1));
  EXPECT_GT(at2, none);
  EXPECT_DOUBLE_EQ(predict_scoring(v, kVerPool + 4 * half + 16), none);
}

TEST(RooflineSplit, AThrashingPoolGetsMemoryTheLinearModelWouldNotMove) {
  RooflineSplit p(0.75, RooflineOptions{});
  // The linear model sees a pool short by 5%: within the hysteresis, no move.
  ModelDemand v = scoring_just_over_the_pool();
  const double u = v.jobs * v.ctx_tokens / v.sharing;
  v.miss_pool_tokens = kVerPool, v.miss_tokens = (u - (double)kVerPool) / v.jobs;
  EXPECT_FALSE(p.rebalance(state(0.75, generation(64, 1000), v)).has_value()) << p.last_reason();
  // Measured: the cache thrashes, and the whole working set is computed
  // again every iteration. The split gives the verifier what holds it.
  v.miss_tokens = 0.9 * u / v.jobs;
  MemoryState s = state(0.75, generation(64, 1000), v);
  auto m = p.rebalance(s);
  ASSERT_TRUE(m.has_value()) << p.last_reason();
  EXPECT_GE((double)s.verifier.tokens(m->verifier_kv_bytes), u) << p.last_reason();
}

TEST(RooflineSplit, GivingBackMemoryTheWorkingSetDoesNotUseCostsNothing) {
  // The verifier's contexts are three times its pool; the generator's beams
  // hold a tenth of its pool. Taking most of the generator's pool (1.7 s to
  // compute again, were it all in use) costs no recompute, so the split
  // moves although an iteration gains less than that.
  RooflineOptions o;
  o.horizon = 1, o.max_step = 1;
  RooflineSplit p(0.75, o);
  ModelDemand v = scoring(64, 3 * kVerPool * 1.5 / 64);
  v.cost = cost(1.5e9, 28672, true);  // a small PRM: its misses are cheap to compute again
  MemoryState s = state(0.75, generation(16, 1000), v);
  auto m = p.rebalance(s);
  ASSERT_TRUE(m.has_value()) << p.last_reason();
  EXPECT_LT(share(*m), 0.3) << p.last_reason();
  // A generator whose beams fill its pool pays for what it gives back.
  ModelDemand g = generation(256, 500);
  g.sharing = 1;
  s = state(0.75, g, v);
  auto n = p.rebalance(s);
  EXPECT_TRUE(!n.has_value() || share(*n) > share(*m)) << p.last_reason();
}

TEST(DemandWindow, MissesCountWithThePoolSizeTheyWereMeasuredAt) {
  DemandWindow w(3.0, 256);
  DemandWindow::Clock::time_point t{};
  msg::QueueLoad q;
  q.score_jobs = 64, q.score_ctx_tokens = 64 * 1000;
  w.add(q, t);
  auto report = [&](double miss, int32_t jobs, int64_t pool) {
    msg::EngineLoad e;
    e.role = "verifier", e.tokens_per_job = 100, e.miss_tokens_per_job = miss, e.miss_jobs = jobs;
    e.pool_tokens = pool, e.max_ctx_tokens = 1100;
    w.add(e, t += 100ms);
    return w.verifier(t);
  };
  ModelDemand d = report(300, DemandWindow::kMinMissJobs, 8000);
  EXPECT_EQ(d.miss_tokens, 300);
  EXPECT_EQ(d.miss_pool_tokens, 8000);
  // Resized: the first jobs at the new size do not replace the pair yet.
  d = report(20, 2, 16000);
  EXPECT_EQ(d.miss_tokens, 300);
  EXPECT_EQ(d.miss_pool_tokens, 8000);
  d = report(10, DemandWindow::kMinMissJobs, 16000);
  EXPECT_EQ(d.miss_tokens, 10);
  EXPECT_EQ(d.miss_pool_tokens, 16000);
}

TEST(DemandWindow, TheWorkingSetIsTheWindowOfAboutOneIterationsJobs) {
  DemandWindow w(3.0, 256);
  DemandWindow::Clock::time_point t{};
  msg::QueueLoad q;
  q.gen_jobs = 60, q.gen_ctx_tokens = 60 * 900;
  q.score_jobs = 4, q.score_ctx_tokens = 4 * 3000;
  w.add(q, t);
  auto report = [&](std::vector<int32_t> jobs, std::vector<int32_t> unique) {
    msg::EngineLoad e;
    e.role = "verifier", e.tokens_per_job = 100, e.max_ctx_tokens = 3100;
    e.window_jobs = jobs, e.window_unique_tokens = unique;
    e.window_ctx_tokens.assign(jobs.size(), 0);
    w.add(e, t += 100ms);
    return w.verifier(t);
  };
  EXPECT_EQ(w.verifier(t).job_kv_tokens, 0) << "not measured yet";
  // The verifier keeps the contexts of the 64 beams (4 scoring, 60 to be
  // scored next): the window of 64 jobs, not the one of 128.
  // While fewer jobs have finished, the largest window there is.
  ModelDemand d = report({8, 16, 20}, {800, 1400, 1600});
  EXPECT_DOUBLE_EQ(d.job_kv_tokens, 1600.0 / 20);
  d = report({8, 16, 32, 64, 128}, {800, 1400, 2400, 5120, 7000});
  EXPECT_DOUBLE_EQ(d.job_kv_tokens, 5120.0 / 64);
  // A lower report within the demand's window does not lower it (a window
  // across two iterations reads less than one); once the window passed it does.
  d = report({8, 16, 32, 64, 128}, {800, 1400, 2400, 3200, 7000});
  EXPECT_DOUBLE_EQ(d.job_kv_tokens, 5120.0 / 64);
  t += 4s;
  w.add(q, t);
  d = report({8, 16, 32, 64, 128}, {800, 1400, 2400, 3200, 7000});
  EXPECT_DOUBLE_EQ(d.job_kv_tokens, 3200.0 / 64);
}

TEST(DemandWindow, BeamsWaitingAtTheirBarrierCountAsHeldAndAdmissionAsItCounts) {
  DemandWindow w(3.0, 256);
  DemandWindow::Clock::time_point t{};
  // Four requests of 64 beams: 20 generating (12 out), 4 scoring, the rest
  // waiting for their iteration's stragglers.
  msg::QueueLoad q;
  q.gen_jobs = 20, q.gen_ctx_tokens = 20 * 500, q.score_jobs = 4, q.score_ctx_tokens = 4 * 2000;
  q.live_jobs = 256;
  q.gen_out_jobs = 12, q.gen_out_tokens = 12 * 756;
  q.score_out_jobs = 2, q.score_out_tokens = 2 * 9000;
  w.add(q, t);
  EXPECT_EQ(w.generator(t).held(), 256);
  EXPECT_EQ(w.verifier(t).held(), 256);
  EXPECT_DOUBLE_EQ(w.generator(t).admit_tokens, 756);
  // The mean over the window's reports, weighted by the jobs out in each.
  q.gen_out_jobs = 4, q.gen_out_tokens = 4 * 356;
  w.add(q, t += 100ms);
  EXPECT_DOUBLE_EQ(w.generator(t).admit_tokens, (12.0 * 756 + 4 * 356) / 16);
  EXPECT_DOUBLE_EQ(w.verifier(t).admit_tokens, 9000);
  // Fewer live beams than jobs (a report before the scheduler counted them): the jobs.
  q.live_jobs = 0;
  DemandWindow w2(3.0, 256);
  w2.add(q, t);
  EXPECT_EQ(w2.generator(t).held(), 24);
}

TEST(RooflineSplit, TheSchedulersAdmissionBoundsTheJobsThatRunAtOnce) {
  // 256 beams whose KV takes 150 tokens each, but whose admission counts
  // their whole context and what they may write (600): in a pool of 30,000
  // tokens 50 run at once, not 200, and the iteration takes longer.
  ModelDemand g = generation(256, 400);
  g.job_kv_tokens = 150, g.min_tokens = 600;
  const double by_kv = predict_generation(g, 30'000);
  g.admit_tokens = 600;
  const double admitted = predict_generation(g, 30'000);
  EXPECT_GT(admitted, 2 * by_kv);
  // With room for every job's admission, the same as the KV alone allows.
  g.admit_tokens = 100;
  EXPECT_DOUBLE_EQ(predict_generation(g, 30'000), by_kv);
}

// A demand window that heard of `jobs` scoring jobs of 3,000 tokens, then of
// the verifier's largest context `max_ctx`; `e` adds to that report.
DemandWindow scoring_window(int32_t jobs, int64_t max_ctx, DemandWindow::Clock::time_point* t,
                            const std::function<void(msg::EngineLoad&)>& e_more = {}) {
  DemandWindow w(3.0, 256);
  msg::QueueLoad q;
  q.score_jobs = jobs, q.score_ctx_tokens = jobs * 3000;
  w.add(q, *t);
  msg::EngineLoad e;
  e.role = "verifier", e.tokens_per_job = 100, e.max_ctx_tokens = max_ctx;
  if (e_more) e_more(e);
  w.add(e, *t += 100ms);
  return w;
}

TEST(DemandWindow, TheLargestJobStaysWhenItsModelFallsSilent) {
  // A verifier whose next job waits for its pool to grow runs no pass and
  // reports nothing more: the pool's floor stays that job's context.
  DemandWindow::Clock::time_point t{};
  DemandWindow w = scoring_window(2, 3800, &t);
  msg::QueueLoad q;
  q.score_jobs = 2, q.score_ctx_tokens = 2 * 3000;
  w.add(q, t += 10s);
  EXPECT_EQ(w.verifier(t).min_tokens, 3800);
}

TEST(DemandWindow, TheWorkingSetIsNotMeasuredBeforeTheSmallestWindowFills) {
  DemandWindow::Clock::time_point t{};
  DemandWindow w = scoring_window(4, 3100, &t, [](msg::EngineLoad& e) {
    e.window_jobs = {5}, e.window_unique_tokens = {600}, e.window_ctx_tokens = {0};
  });
  EXPECT_EQ(w.verifier(t).job_kv_tokens, 0);
}

TEST(RooflineSplit, AVerifierWhoseMeasuredWorkingSetIsSmallGivesBackThePoolItHardlyMisses) {
  // The generator's beams need half as much again as its pool. The
  // verifier's contexts, from the scheduler's figures and the sharing among
  // the few jobs it runs at once, would need three times its pool, and it
  // misses little there: its working set reads as its pool, and giving any
  // of it up as recomputing 7B contexts. No move.
  RooflineSplit p(0.4, RooflineOptions{});
  const double gen_pool = 0.4 * (double)(4ll << 30) / 28672, ver_pool = 0.6 * (double)(4ll << 30) / 57344;
  ModelDemand g = generation(64, 1.5 * (1.5 * gen_pool / 64 - 100));
  ModelDemand v = scoring(64, 3000);
  v.miss_pool_tokens = (int64_t)ver_pool, v.miss_tokens = 5;
  EXPECT_FALSE(p.rebalance(state(0.4, g, v)).has_value()) << p.last_reason();
  // Measured over its last 64 jobs, the beams' contexts take 300 KV tokens
  // each (they share the prompt and their ancestors): 19,200 tokens, under
  // half its pool. The split gives the generator the memory it lacks.
  v.job_kv_tokens = 300;
  auto m = p.rebalance(state(0.4, g, v));
  ASSERT_TRUE(m.has_value()) << p.last_reason();
  EXPECT_GT(share(*m), 0.5) << p.last_reason();
  EXPECT_GE((double)m->verifier_kv_bytes / 57344, 64 * 300) << p.last_reason();
}

TEST(RooflineSplit, AmongSplitsThatPredictTheSameTimeItTakesTheOneWithTheMostRoomForBoth) {
  // Working sets of 20,000 generator tokens and 10,000 verifier tokens in 4
  // GiB: both fit anywhere from 15% to 85% for the generator, and every
  // split there predicts the same time. The verifier's pool at 95% is short.
  // Both pools have the same room over their working sets, 3.7 times, at 50%;
  // the first split of the plateau (15%) would leave the generator 12% over
  // its working set, which its growing contexts soon pass.
  RooflineOptions o;
  o.max_step = 1;
  RooflineSplit p(0.95, o);
  ModelDemand g = generation(64, 300), v = scoring(64, 300);
  g.job_kv_tokens = 20000.0 / 64, v.job_kv_tokens = 10000.0 / 64;
  MemoryState s = state(0.95, g, v);
  ASSERT_GT(predict_scoring(v, s.verifier.tokens(s.current.verifier_kv_bytes)), predict_scoring(v, 10000));
  auto m = p.rebalance(s);
  ASSERT_TRUE(m.has_value()) << p.last_reason();
  EXPECT_NEAR(share(*m), 0.5, 0.026) << p.last_reason();
}

TEST(RooflineSplit, AMoveGoesAtMostMaxStepTowardTheBestSplit) {
  RooflineOptions o;
  o.max_step = 1;
  RooflineSplit far(0.75, o);
  const MemoryState s = state(0.75, generation(8, 1000), scoring(256, 2000));
  auto all_the_way = far.rebalance(s);
  ASSERT_TRUE(all_the_way.has_value()) << far.last_reason();
  ASSERT_LT(share(*all_the_way), 0.5) << far.last_reason();
  RooflineSplit near(0.75, RooflineOptions{});
  auto step = near.rebalance(s);
  ASSERT_TRUE(step.has_value()) << near.last_reason();
  EXPECT_NEAR(share(*step), 0.75 - RooflineOptions{}.max_step, 1e-3) << near.last_reason();
}

// The gain of the best split on the policy's grid over the current one.
double best_gain(const MemoryState& s) {
  auto predict = [&](int64_t g) {
    return predict_generation(s.gen, s.generator.tokens(g)) + predict_scoring(s.ver, s.verifier.tokens(s.kv_bytes - g));
  };
  double best = predict(s.current.generator_kv_bytes);
  for (int k = 1; k < 20; ++k) best = std::min(best, predict(s.kv_bytes * k / 20));
  return predict(s.current.generator_kv_bytes) / best - 1;
}

TEST(RooflineSplit, MovingBackTheWayItCameNeedsALargerGainEachTime) {
  // The verifier's demand rose: a move toward it.
  MemoryState s = state(0.75, generation(8, 1000), scoring(64, 2000));
  const auto first = RooflineSplit(0.75, RooflineOptions{}).rebalance(s);
  ASSERT_TRUE(first.has_value());
  // Then work whose best split is back toward the generator, by a gain g.
  MemoryState back = state(share(*first), generation(128, 3000), scoring(8, 1000));
  back.current = *first;
  const double g = best_gain(back);
  ASSERT_GT(g, 0.01);
  // With a hysteresis of g / 1.5, a first move would go; back the way the
  // last came it needs twice that, and stays.
  RooflineOptions o;
  o.hysteresis = g / 1.5;
  RooflineSplit p(0.75, o);
  ASSERT_TRUE(p.rebalance(s).has_value());
  EXPECT_TRUE(RooflineSplit(0.75, o).rebalance(back).has_value());
  EXPECT_FALSE(p.rebalance(back).has_value()) << p.last_reason();
  EXPECT_NE(p.last_reason().find("back the way it came"), std::string::npos) << p.last_reason();
  // With g / 2.5 it goes back, and a second reversal needs four times it.
  RooflineOptions o2;
  o2.hysteresis = g / 2.5;
  RooflineSplit q(0.75, o2);
  ASSERT_TRUE(q.rebalance(s).has_value());
  back.since_move_s = 2;
  auto m = q.rebalance(back);
  ASSERT_TRUE(m.has_value()) << q.last_reason();
  EXPECT_GT(share(*m), share(*first));
  MemoryState again = state(share(*m), generation(8, 1000), scoring(64, 2000));
  again.current = *m;
  again.since_move_s = 2;
  if (best_gain(again) < 4 * o2.hysteresis) {
    EXPECT_FALSE(q.rebalance(again).has_value()) << q.last_reason();
  }
}

TEST(RooflineSplit, ReversalsCountWhileRecentEvenWithAMoveTheSameWayBetween) {
  // Steps of 10%: toward the verifier (75% -> 65%), back (75%), the same
  // way (85%), then back again. The second reversal comes 6 s after the
  // first, so it needs four times the hysteresis though a move went the
  // same way between them; past reversal_memory_s, twice.
  auto at = [](double share, bool verifier_heavy) {
    MemoryState s = verifier_heavy ? state(share, generation(8, 1000), scoring(256, 2000))
                                   : state(share, generation(256, 3000), scoring(8, 1000));
    s.since_move_s = 2;
    return s;
  };
  const double gain_back = best_gain(at(0.85, true));
  RooflineOptions o;
  o.max_step = 0.1, o.horizon = 1e9;  // the moves' recompute cost aside
  o.hysteresis = gain_back / 3;       // 2x it is below the gain back, 4x above
  ASSERT_GT(best_gain(at(0.75, true)), o.hysteresis);
  ASSERT_GT(best_gain(at(0.65, false)), 2 * o.hysteresis);
  ASSERT_GT(best_gain(at(0.75, false)), o.hysteresis);
  RooflineSplit p(0.75, o);
  auto a = p.rebalance(at(0.75, true));
  ASSERT_TRUE(a.has_value()) << p.last_reason();
  ASSERT_NEAR(share(*a), 0.65, 1e-3);
  auto b = p.rebalance(at(0.65, false));  // the first reversal
  ASSERT_TRUE(b.has_value()) << p.last_reason();
  ASSERT_NEAR(share(*b), 0.75, 1e-3);
  auto c = p.rebalance(at(0.75, false));  // the same way
  ASSERT_TRUE(c.has_value()) << p.last_reason();
  ASSERT_NEAR(share(*c), 0.85, 1e-3);
  EXPECT_FALSE(p.rebalance(at(0.85, true)).has_value()) << p.last_reason();
  EXPECT_NE(p.last_reason().find("back the way it came needs"), std::string::npos) << p.last_reason();
  MemoryState later = at(0.85, true);
  later.since_move_s = o.reversal_memory_s + 1;
  EXPECT_TRUE(p.rebalance(later).has_value()) << p.last_reason();
}

TEST(RooflineSplit, AShrinkWaitsUntilTheShrinkingModelsRunningJobsFitItsNewSize) {
  RooflineOptions o;
  RooflineSplit p(0.75, o);
  // The move MovesTowardTheModelWhoseDemandRose makes: the generator shrinks.
  MemoryState s = state(0.75, generation(8, 1000), scoring(256, 2000));
  const int64_t gen_pool = s.generator.tokens(s.current.generator_kv_bytes);
  // Its running jobs hold blocks up to 90% of its pool: any move preempts them.
  s.gen.pinned_tokens = gen_pool * 9 / 10;
  s.since_move_s = 100;
  EXPECT_FALSE(p.rebalance(s).has_value());
  EXPECT_NE(p.last_reason().find("waiting until the generator's running jobs fit"), std::string::npos)
      << p.last_reason();
  s.since_move_s = 100 + o.max_preempt_wait_s / 2;
  EXPECT_FALSE(p.rebalance(s).has_value()) << p.last_reason();
  // They finished: the move goes.
  s.gen.pinned_tokens = gen_pool / 10;
  auto m = p.rebalance(s);
  ASSERT_TRUE(m.has_value()) << p.last_reason();
  EXPECT_LT(share(*m), 0.75);
  // Jobs that never fit: after max_preempt_wait_s it moves anyway.
  RooflineSplit q(0.75, o);
  s.gen.pinned_tokens = gen_pool;
  s.since_move_s = 100;
  EXPECT_FALSE(q.rebalance(s).has_value());
  s.since_move_s = 100 + o.max_preempt_wait_s + 0.1;
  EXPECT_TRUE(q.rebalance(s).has_value()) << q.last_reason();
  // The verifier's next job cannot run at its pool: no waiting at all.
  RooflineSplit r(0.75, o);
  s.since_move_s = 100;
  s.ver.min_tokens = s.verifier.tokens(s.current.verifier_kv_bytes) + 16;
  EXPECT_TRUE(r.rebalance(s).has_value()) << r.last_reason();
}

TEST(RooflineSplit, AnIdleModelGivesMemoryOnlyWhenTheOthersNextJobCannotRun) {
  // The generator has no jobs: its beams wait for the verifier, whose next
  // job is larger than its pool. Without a move neither ever runs again.
  ModelDemand g = generation(0, 0), v = scoring(2, 2000);
  g.new_tokens = 0, g.min_tokens = 1200;
  const MemoryState blocked = [&] {
    MemoryState s = state(0.9, g, v);
    s.ver.min_tokens = s.verifier.tokens(s.current.verifier_kv_bytes) + 4096;
    return s;
  }();
  RooflineSplit p(0.9, RooflineOptions{});
  auto m = p.rebalance(blocked);
  ASSERT_TRUE(m.has_value()) << p.last_reason();
  EXPECT_LT(share(*m), 0.9);
  EXPECT_GE(blocked.generator.tokens(m->generator_kv_bytes), g.min_tokens) << "not below the idle model's floor";
  // The verifier's job runs at its pool: an idle generator decides nothing.
  RooflineSplit q(0.9, RooflineOptions{});
  EXPECT_FALSE(q.rebalance(state(0.9, g, v)).has_value()) << q.last_reason();
}

TEST(RooflineSplit, AfterAMoveItDecidesFromTheMissesMeasuredAtTheNewSizes) {
  RooflineOptions o;
  o.max_step = 0.1;
  RooflineSplit p(0.75, o);
  MemoryState s = state(0.75, generation(8, 1000), scoring(256, 2000));
  auto first = p.rebalance(s);
  ASSERT_TRUE(first.has_value()) << p.last_reason();
  // The next step the same way, while both models still tell the misses of
  // their pools before the move: it waits for them.
  MemoryState next = state(share(*first), generation(8, 1000), scoring(256, 2000));
  next.current = *first, next.since_move_s = 2;
  // (What the linear model predicts: the verifier's contexts are 256 x 2000
  // / 1.5 tokens; the generator's fit its pool.)
  auto linear = [](ModelDemand& d, int64_t pool) {
    d.miss_pool_tokens = pool;
    d.miss_tokens = std::max(0.0, d.jobs * d.ctx_tokens / d.sharing - (double)pool) / d.jobs;
  };
  linear(next.gen, s.generator.tokens(s.current.generator_kv_bytes));
  linear(next.ver, s.verifier.tokens(s.current.verifier_kv_bytes));
  EXPECT_FALSE(p.rebalance(next).has_value()) << p.last_reason();
  EXPECT_NE(p.last_reason().find("waiting for the misses at the new sizes"), std::string::npos) << p.last_reason();
  // Measured at the new sizes: it goes on.
  MemoryState measured = next;
  linear(measured.gen, next.generator.tokens(next.current.generator_kv_bytes));
  linear(measured.ver, next.verifier.tokens(next.current.verifier_kv_bytes));
  EXPECT_TRUE(RooflineSplit(p).rebalance(measured).has_value()) << p.last_reason();
  // A job the verifier's pool cannot hold: no waiting.
  MemoryState stuck = next;
  stuck.ver.min_tokens = stuck.verifier.tokens(stuck.current.verifier_kv_bytes) + 16;
  EXPECT_TRUE(RooflineSplit(p).rebalance(stuck).has_value()) << p.last_reason();
  // Never measured there (too few jobs at one model): it waits max_wait_s at most.
  next.since_move_s = o.max_wait_s + 1;
  EXPECT_TRUE(p.rebalance(next).has_value()) << p.last_reason();
}

TEST(RooflineSplit, StaysWhenTheGainIsWithinTheHysteresisOrAMoveWasJustMade) {
  RooflineSplit p(0.75, RooflineOptions{});
  MemoryState s = state(0.75, generation(8, 1000), scoring(256, 2000));
  auto move = p.rebalance(s);
  ASSERT_TRUE(move.has_value());
  int steps = 0;
  for (; move && steps < 10; ++steps) {  // step by step to the best split
    s.current = *move;
    move = p.rebalance(s);
  }
  EXPECT_LE(steps, 1 + (int)std::ceil(0.75 / RooflineOptions{}.max_step));
  EXPECT_FALSE(p.rebalance(s).has_value()) << p.last_reason();  // there: it stays
  s = state(0.75, generation(8, 1000), scoring(256, 2000));
  s.since_move_s = 0.2;  // within the dwell time
  EXPECT_FALSE(p.rebalance(s).has_value());
  // Nothing known of the verifier's passes yet: no move.
  s = state(0.75, generation(8, 1000), scoring(256, 2000));
  s.ver.latency = {};
  EXPECT_FALSE(p.rebalance(s).has_value());
}

TEST(RooflineSplit, AnAlternatingWorkloadReadsAsItsMixAndDoesNotOscillate) {
  // Every 400 ms the work flips between generation-heavy and scoring-heavy;
  // the arbiter decides every 250 ms over a 3 s window.
  RooflineSplit p(0.75, RooflineOptions{});
  DemandWindow w(3.0, 256);
  w.set_cost(true, cost(1.5e9, 28672, false));
  w.set_cost(false, cost(7e9, 57344, true));
  MemoryState s = state(0.75, {}, {});
  DemandWindow::Clock::time_point t{};
  double last_move = -1e9;
  int moves = 0;
  for (int tick = 0; tick < 400; ++tick) {  // 40 s in 100 ms ticks
    t += 100ms;
    const bool gen_heavy = (tick / 4) % 2 == 0;
    msg::QueueLoad q;
    q.gen_jobs = gen_heavy ? 256 : 8, q.gen_ctx_tokens = q.gen_jobs * 1500;
    q.score_jobs = gen_heavy ? 8 : 256, q.score_ctx_tokens = q.score_jobs * 1500;
    w.add(q, t);
    for (const char* role : {"generator", "verifier"}) {
      msg::EngineLoad e;
      e.role = role, e.running = 8, e.running_ctx_tokens = 8 * 1500, e.kv_used_tokens = 8000;
      e.max_ctx_tokens = 2000, e.tokens_per_job = 100;
      e.overhead_s = kCard.overhead_s, e.s_per_byte = kCard.s_per_byte, e.s_per_flop = kCard.s_per_flop;
      w.add(e, t);
    }
    if (tick % 3 != 0) continue;
    const double now = tick * 0.1;
    s.gen = w.generator(t), s.ver = w.verifier(t);
    s.since_move_s = now - last_move;
    if (auto m = p.rebalance(s)) {
      s.current = *m;
      last_move = now;
      ++moves;
    }
  }
  // At most the one move to the mix's best split (and one correction).
  EXPECT_LE(moves, 2) << p.last_reason();
}

// A memory arbiter on its inbox, with test sockets at its peers and a push
// socket into it; start() waits for its weights queries.
struct ArbiterHarness {
  explicit ArbiterHarness(const std::string& tag)
      : p(ctx, tag, {"generator", "verifier", "scheduler", "intake"}), inbox("inproc://" + tag), to(ctx, zmq::socket_type::push) {}

  MemoryArbiterOptions options(int64_t budget_bytes, const char* policy) {
    return MemoryArbiterOptions{inbox, p.endpoints, budget_bytes, 0.75, policy, logs.make("memory_arbiter")};
  }
  void start(const MemoryArbiterOptions& o) {
    auto started = Actor::start(ctx, "memory_arbiter", [o](auto& c, auto& pipe) { return run_memory_arbiter(c, pipe, o); });
    ASSERT_TRUE(started.ok());
    a = std::move(started).value();
    to.set(zmq::sockopt::linger, 0);
    to.connect(inbox);
    EXPECT_TRUE(p.next<msg::WeightsQuery>("generator"));
    EXPECT_TRUE(p.next<msg::WeightsQuery>("verifier"));
  }
  template <class M>
  void send(const M& m) {
    to.send(zmq::buffer(msg::encode(m)));
  }

  zmq::context_t ctx;
  test::Peers p;
  LogSink logs{spdlog::level::off};
  std::string inbox;
  zmq::socket_t to;
  std::unique_ptr<Actor> a;
};

// Issue 23: an automatic budget on a GPU leaves the backends' workspaces
// free, as the engines report them with their weights; the KV is what is left.
TEST(MemoryArbiter, AnAutomaticBudgetLeavesTheBackendsWorkspaces) {
  ArbiterHarness h("arb-ws");
  MemoryArbiterOptions o = h.options(0, "static");
  o.device_bytes = 22ll << 30;  // a 24 GB card less its margin
  h.start(o);
  const int64_t gen_ws = 450ll << 20, ver_ws = 800ll << 20;
  msg::Weights gw = weights_report("generator", cost(1.5e9, 28672, false), 16, 0, gen_ws);
  msg::Weights vw = weights_report("verifier", cost(7e9, 57344, true), 16, 0, ver_ws);
  h.send(gw);
  h.send(vw);
  auto g = h.p.next<msg::Grant>("generator"), v = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g && v);
  const int64_t kv = o.device_bytes - gw.weight_bytes - vw.weight_bytes - gen_ws - ver_ws;
  EXPECT_LE(g->kv_bytes + v->kv_bytes, kv);
  EXPECT_GE(g->kv_bytes + v->kv_bytes, kv - 2 * 16 * 57344);  // whole blocks
  EXPECT_TRUE(h.a->stop(2s));
}

// The arbiter's side: grants carry the room to grow; a move shrinks one
// model, waits for its pool_size, then grows the other by what came back.
TEST(MemoryArbiter, RooflineMovesMemoryShrinkFirstThenGrow) {
  ArbiterHarness h("arb-roof");
  const int64_t kv = 4ll << 30;  // KV memory left by the weights
  MemoryArbiterOptions o = h.options(17'000'000'000 + kv, "roofline");
  o.decide_every_ms = 0;
  h.start(o);
  auto weights = [](const char* role, double params, int64_t kv) {
    return weights_report(role, cost(params, (double)kv, std::string(role) == "verifier"), 16, 0, 0);
  };
  h.send(weights("generator", 1.5e9, 28672));
  h.send(weights("verifier", 7e9, 57344));
  auto g = h.p.next<msg::Grant>("generator"), v = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g && v);
  EXPECT_EQ(g->kv_bytes + v->kv_bytes, kv);
  EXPECT_GT(g->kv_bytes_max, g->kv_bytes);  // room to grow into
  EXPECT_GT(v->kv_bytes_max, v->kv_bytes);
  // Scoring-heavy work.
  msg::QueueLoad q;
  q.gen_jobs = 8, q.gen_ctx_tokens = 8 * 100, q.score_jobs = 256, q.score_ctx_tokens = 256 * 2000;
  for (const char* role : {"generator", "verifier"}) {
    msg::EngineLoad e;
    e.role = role, e.running = 8, e.running_ctx_tokens = 8 * 3000, e.kv_used_tokens = 8 * 2000;
    e.max_ctx_tokens = 2100, e.tokens_per_job = 100;
    e.overhead_s = kCard.overhead_s, e.s_per_byte = kCard.s_per_byte, e.s_per_flop = kCard.s_per_flop;
    h.send(e);
  }
  h.send(q);
  auto shrink = h.p.next<msg::Grant>("generator");
  ASSERT_TRUE(shrink);
  EXPECT_LT(shrink->kv_bytes, g->kv_bytes);
  EXPECT_FALSE(h.p.next<msg::Grant>("verifier", 200ms));  // nothing grows before the shrink is done
  msg::PoolSize done;
  done.role = "generator", done.serial = shrink->serial, done.kv_bytes = shrink->kv_bytes, done.kv_tokens = shrink->kv_tokens;
  h.send(done);
  auto grow = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(grow);
  EXPECT_EQ(grow->kv_bytes, kv - shrink->kv_bytes);
  // Each model's misses count again after about one iteration's jobs at its
  // new size: the beams' (8 generating, 256 being scored) at both.
  EXPECT_EQ(g->settle_jobs, 0);
  EXPECT_EQ(shrink->settle_jobs, 8 + 256);
  EXPECT_EQ(grow->settle_jobs, 256 + 8);
  EXPECT_TRUE(h.a->stop(2s));
}

// The weights reports of a 1.5B policy and a 7B PRM of 4,096 positions.
msg::Weights policy_weights() { return weights_report("generator", cost(1.5e9, 28672, false), 16, 4096, 0); }
msg::Weights prm_weights() { return weights_report("verifier", cost(7e9, 57344, true), 16, 4096, 0); }

// A model announces its weights when it loads and answers the query the
// arbiter sends at its start: the answer after the announcement brings no
// second grant. A model that announces again (its process restarted, its
// engine gone) is granted again.
TEST(MemoryArbiter, AnAnswerToItsQueryAfterTheAnnouncementIsNotGrantedTwice) {
  ArbiterHarness h("arb-answer");
  h.start(h.options(24'000'000'000, "static"));
  h.send(policy_weights());
  h.send(prm_weights());
  auto g = h.p.next<msg::Grant>("generator"), v = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g && v);
  msg::Weights answer = policy_weights();
  answer.answer = true;
  h.send(answer);
  answer = prm_weights();
  answer.answer = true;
  h.send(answer);
  EXPECT_FALSE(h.p.next<msg::Grant>("generator", 300ms));
  EXPECT_FALSE(h.p.next<msg::Grant>("verifier", 300ms));
  h.send(policy_weights());  // restarted
  auto again = h.p.next<msg::Grant>("generator");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->kv_bytes, g->kv_bytes);
  EXPECT_TRUE(h.a->stop(2s));
}

// Starts h's arbiter (static split) with `budget` and `offload`; both models announce themselves.
void start_offload(ArbiterHarness& h, int64_t budget, const char* offload) {
  MemoryArbiterOptions o = h.options(budget, "static");
  o.offload = offload;
  h.start(o);
  h.send(policy_weights());
  h.send(prm_weights());
}

// memory.offload, the arbiter's side: a budget that cannot hold both
// models' weights makes them take turns. The KV memory is the budget less
// the larger model's weights; the verifier is granted first, off the
// device, and the generator only once the verifier's pool exists. A turn
// passes when the other model wants the device and the one on it does not,
// or, while both do, after the quantum: always the one on the device off
// first, then the other on.
TEST(MemoryArbiter, ModelsTakeTurnsOnTheDeviceWhenTheBudgetCannotHoldBothWeights) {
  ArbiterHarness h("arb-turns");
  const int64_t kv = 2ll << 30;
  const msg::Weights gw = policy_weights(), vw = prm_weights();
  start_offload(h, vw.weight_bytes + kv, "auto");  // not both weights
  auto v = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->turns);
  EXPECT_FALSE(v->resident);
  EXPECT_FALSE(h.p.next<msg::Grant>("generator", 200ms)) << "the generator waits for the verifier's pool";
  h.send(msg::PoolSize{"verifier", v->serial, v->kv_bytes, v->kv_tokens, 0, ""});
  auto g = h.p.next<msg::Grant>("generator");
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->turns);
  EXPECT_TRUE(g->resident);
  EXPECT_LE(g->kv_bytes + v->kv_bytes, kv);
  EXPECT_GE(g->kv_bytes + v->kv_bytes, kv - 2 * 16 * 57344);  // whole blocks

  // One switch: `from`'s weights leave (answered) before `to`'s come back,
  // taking upload_s.
  auto pass_turn = [&](const char* from, const char* to, double upload_s) {
    auto off = h.p.next<msg::DeviceTurn>(from, 5s);
    ASSERT_TRUE(off);
    EXPECT_FALSE(off->on);
    EXPECT_FALSE(h.p.next<msg::DeviceTurn>(to, 100ms)) << "nothing loads before the weights left";
    h.send(msg::TurnDone{from, off->serial, false, 0, ""});
    auto on = h.p.next<msg::DeviceTurn>(to);
    ASSERT_TRUE(on);
    EXPECT_TRUE(on->on);
    h.send(msg::TurnDone{to, on->serial, true, upload_s, ""});
  };
  // The verifier has work, the generator none: the turn passes.
  h.send(msg::DeviceUse{"verifier", true});
  pass_turn("generator", "verifier", 0.02);
  // Both have work: the verifier keeps the device for the quantum (1 s
  // before both uploads were measured), then it passes back.
  const auto t0 = std::chrono::steady_clock::now();
  h.send(msg::DeviceUse{"generator", true});
  pass_turn("verifier", "generator", 0.01);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  // Now both uploads are measured: the quantum is kTurnFactor x 0.03 s.
  const auto t1 = std::chrono::steady_clock::now();
  auto again = h.p.next<msg::DeviceTurn>("generator", 5s);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->on);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 900ms);
  EXPECT_TRUE(h.a->stop(2s));
}

// "auto" keeps both models on the device while the split gives each a pool
// of one sequence of its positions; "off" never takes turns.
TEST(MemoryArbiter, OffloadAutoKeepsBothModelsWhereTheirPoolsAreUseful) {
  for (const char* mode : {"auto", "off"}) {
    ArbiterHarness h(std::string("arb-noturns-") + mode);
    const msg::Weights gw = policy_weights(), vw = prm_weights();
    // 25% of the KV is 1.25 verifier sequences of 4,096 tokens.
    const int64_t kv = 5 * 4096 * 57344;
    start_offload(h, gw.weight_bytes + vw.weight_bytes + kv, mode);
    auto g = h.p.next<msg::Grant>("generator"), v = h.p.next<msg::Grant>("verifier");
    ASSERT_TRUE(g && v) << mode;
    EXPECT_FALSE(g->turns || v->turns) << mode;
    EXPECT_TRUE(g->resident && v->resident) << mode;
    EXPECT_TRUE(h.a->stop(2s));
  }
  // Not even the larger model's weights with a block each: the arbiter
  // fails, saying so (the supervisor reports it).
  {
    ArbiterHarness h("arb-none");
    start_offload(h, prm_weights().weight_bytes, "auto");
    auto failed = h.a->poll_failure(2s);
    ASSERT_TRUE(failed);
    EXPECT_NE(failed->find("cannot hold the larger model's weights"), std::string::npos) << *failed;
    EXPECT_NE(failed->find("memory.offload"), std::string::npos) << *failed;
    h.a->stop(2s);
  }
  // One sequence short: "auto" takes turns.
  ArbiterHarness h("arb-short");
  const msg::Weights gw = policy_weights(), vw = prm_weights();
  start_offload(h, gw.weight_bytes + vw.weight_bytes + 3 * 4096 * 57344, "auto");
  auto v = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->turns);
  EXPECT_TRUE(h.a->stop(2s));
}

// A budget below both models' weights with the turns off: the failure
// says that "auto" would run; where weights cannot leave the device (the
// CPU: "none") it does not.
TEST(MemoryArbiter, ABudgetBelowBothWeightsNamesOffloadOnlyWhereItCanHelp) {
  for (const char* mode : {"off", "none"}) {
    ArbiterHarness h(std::string("arb-small-") + mode);
    start_offload(h, prm_weights().weight_bytes + (1ll << 30), mode);
    auto failed = h.a->poll_failure(2s);
    ASSERT_TRUE(failed) << mode;
    EXPECT_NE(failed->find("cannot hold the generator"), std::string::npos) << *failed;
    EXPECT_EQ(failed->find("memory.offload") != std::string::npos, std::string(mode) == "off") << *failed;
    h.a->stop(2s);
  }
}

// memory.offload = "adaptive" under the roofline split: the models start taking
// turns while they serve when a job cannot run with both on the device (the
// verifier's largest job is over the KV memory both leave), the model with
// less work leaving first and both pools growing into the KV memory of taking
// turns; and both come back when the jobs are small again, the pools
// shrinking before the weights return.
TEST(MemoryArbiter, UnderTheRooflineSplitTheModelsStartAndStopTakingTurnsAsTheWorkAsks) {
  ArbiterHarness h("arb-mode");
  // 256 positions: "auto" starts with both on the device (each pool holds one).
  const msg::Weights gw = weights_report("generator", cost(1.5e9, 28672, false), 16, 256, 0);
  const msg::Weights vw = weights_report("verifier", cost(7e9, 57344, true), 16, 256, 0);
  const int64_t kv_both = 64ll << 20, kv_turns = kv_both + gw.weight_bytes;
  MemoryArbiterOptions o = h.options(gw.weight_bytes + vw.weight_bytes + kv_both, "roofline");
  o.offload = "adaptive", o.decide_every_ms = 0, o.offload_dwell_s = 0, o.demand_window_s = 0.2;
  h.start(o);
  h.send(gw);
  h.send(vw);
  auto g = h.p.next<msg::Grant>("generator"), v = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g && v);
  EXPECT_FALSE(g->turns || v->turns);
  EXPECT_GE(g->kv_bytes_max, kv_turns / 2) << "room reserved for taking turns";
  auto load = [&](int32_t gen_jobs, int32_t score_jobs, int64_t ver_ctx) {
    // The jobs first: the arbiter decides on every message, and with the
    // engines' reports alone it would see no jobs and a blocked verifier.
    msg::QueueLoad q;
    q.gen_jobs = gen_jobs, q.gen_ctx_tokens = gen_jobs * 100, q.score_jobs = score_jobs;
    q.score_ctx_tokens = score_jobs * ver_ctx;
    h.send(q);
    for (const char* role : {"generator", "verifier"}) {
      msg::EngineLoad e;
      const bool ver = std::string(role) == "verifier";
      e.role = role, e.running = 4, e.running_ctx_tokens = 4 * 100, e.kv_used_tokens = 4 * 100;
      e.max_ctx_tokens = ver ? ver_ctx : 150, e.tokens_per_job = 100;
      e.overhead_s = kCard.overhead_s, e.s_per_byte = kCard.s_per_byte, e.s_per_flop = kCard.s_per_flop;
      h.send(e);
    }
  };
  // PRM inputs of 2,100 tokens: over what the verifier's pool can be while
  // both are on the device (64 MiB hold 1,170 of its tokens).
  load(8, 64, 2100);
  auto off = h.p.next<msg::DeviceTurn>("generator");
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->on) << "the generator has less work: it leaves";
  h.send(msg::TurnDone{"generator", off->serial, false, 0, ""});
  auto g2 = h.p.next<msg::Grant>("generator"), v2 = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g2 && v2);
  EXPECT_TRUE(g2->turns && v2->turns);
  EXPECT_GT(g2->kv_bytes, g->kv_bytes);
  EXPECT_GT(v2->kv_bytes, v->kv_bytes);
  EXPECT_LE(g2->kv_bytes + v2->kv_bytes, kv_turns);
  EXPECT_GE(g2->kv_bytes + v2->kv_bytes, kv_turns - 32 * 57344);
  h.send(msg::PoolSize{"generator", g2->serial, g2->kv_bytes, g2->kv_tokens, 0, ""});
  h.send(msg::PoolSize{"verifier", v2->serial, v2->kv_bytes, v2->kv_tokens, 0, ""});
  // Small jobs again: the uploads (0.85 s estimated) outweigh what the
  // larger pools save. Both pools shrink first, then the generator's
  // weights come back, then both hear the turns ended. (The demand is the
  // peak over its window: the large jobs leave it first.)
  std::this_thread::sleep_for(300ms);
  load(8, 8, 100);
  std::optional<msg::Grant> g3, v3;
  for (int k = 0; k < 4 && !(g3 && v3); ++k) {
    auto env = test::recv_envelope(h.p.in.at(k % 2 ? "verifier" : "generator"), 2s);
    if (!env || env->type != msg::Grant::kType) continue;
    auto gr = msg::decode<msg::Grant>(*env);
    ASSERT_TRUE(gr.ok());
    (gr->role == "generator" ? g3 : v3) = *gr;
  }
  ASSERT_TRUE(g3 && v3);
  EXPECT_LE(g3->kv_bytes + v3->kv_bytes, kv_both);
  EXPECT_FALSE(g3->turns || v3->turns) << "the grants on the way back say the turns ended";
  EXPECT_FALSE(h.p.next<msg::DeviceTurn>("generator", 200ms)) << "no weights before both pools shrank";
  h.send(msg::PoolSize{"generator", g3->serial, g3->kv_bytes, g3->kv_tokens, 0, ""});
  h.send(msg::PoolSize{"verifier", v3->serial, v3->kv_bytes, v3->kv_tokens, 0, ""});
  auto on = h.p.next<msg::DeviceTurn>("generator");
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->on);
  h.send(msg::TurnDone{"generator", on->serial, true, 0.1, ""});
  auto g4 = h.p.next<msg::Grant>("generator"), v4 = h.p.next<msg::Grant>("verifier");
  ASSERT_TRUE(g4 && v4);
  EXPECT_FALSE(g4->turns || v4->turns);
  EXPECT_TRUE(h.a->stop(2s));
}

}  // namespace
}  // namespace flashtts
