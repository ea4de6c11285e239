// The benchmark's figures (runtime/tts_figures.h) on a hand-made trace: what
// two runs' counters and results must give, worked out by hand.
#include <gtest/gtest.h>

#include "runtime/tts_figures.h"

namespace flashtts::tts {
namespace {

msg::MapReader stats_map(double busy, int64_t dec_it, int64_t rows, int64_t prefill, int64_t peak,
                         std::vector<int32_t> hist, int64_t recomputed = 0) {
  msg::MapWriter w;
  w.put("recomputed_tokens", recomputed);
  w.put("busy_ms", busy).put("iterations", dec_it + 1).put("decode_iterations", dec_it).put("decode_rows", rows);
  w.put("prefill_tokens", prefill).put("preemptions", int64_t(1)).put("evictions", int64_t(2));
  w.put("kv_blocks_peak", peak).put("kv_blocks_used", int64_t(0)).put("rows_hist", hist);
  w.put("model_dir", "/m");  // fields the figures do not read are ignored
  auto r = msg::MapReader::parse(w.bytes());
  EXPECT_TRUE(r.ok());
  return *r;
}

TEST(TtsFigures, CountersOfARunAreTheDifferenceAndThePeakIsTheLast) {
  auto before = read_counters(stats_map(100, 10, 35, 500, 40, {0, 1, 0, 0, 9}, 32));
  auto after = read_counters(stats_map(400, 17, 55, 620, 12, {0, 3, 1, 0, 13}, 80));
  ASSERT_TRUE(before.ok() && after.ok());
  Counters d = delta(*after, *before);
  EXPECT_DOUBLE_EQ(d.busy_ms, 300);
  EXPECT_EQ(d.decode_iterations, 7);
  EXPECT_EQ(d.decode_rows, 20);
  EXPECT_EQ(d.prefill_tokens, 120);
  EXPECT_EQ(d.recomputed_tokens, 48);
  EXPECT_EQ(d.preemptions, 0);
  EXPECT_EQ(d.kv_blocks_peak, 12);  // reset at the run's start: after's own
  EXPECT_EQ(d.rows_hist, (std::vector<int64_t>{0, 2, 1, 0, 4}));
  // 7 decode iterations: 3 with fewer than 4 rows.
  EXPECT_DOUBLE_EQ(idle_share(d.rows_hist, 4), 3.0 / 7.0);
  EXPECT_DOUBLE_EQ(idle_share(d.rows_hist, 2), 2.0 / 7.0);
  EXPECT_DOUBLE_EQ(mean_rows(d), 20.0 / 7.0);
  EXPECT_DOUBLE_EQ(idle_share({}, 4), 0.0);
  // Of 7 x 4 slots: 2 iterations of 1 row leave 3 each, 1 of 2 rows leaves 2.
  EXPECT_DOUBLE_EQ(idle_slots(d.rows_hist, 4), 8.0 / 28.0);
  // Iterations with more rows than beams leave none (not fewer than none).
  EXPECT_DOUBLE_EQ(idle_slots(d.rows_hist, 2), 2.0 / 14.0);
  EXPECT_DOUBLE_EQ(idle_slots({}, 4), 0.0);
}

TEST(TtsFigures, ARunSummaryFromItsSolvesAndCounters) {
  RunFigures r;
  r.wall_ms = 30000;
  r.beams = 4;
  r.solves = {{100, 10, 50, 20, true, true, false, ""}, {300, 30, 70, 20, false, true, false, ""},
              {0, 0, 0, 0, false, false, true, "cancelled: x"}};
  r.gen.prefill_tokens = 100;
  r.gen.busy_ms = 250;
  r.gen.decode_iterations = 4;
  r.gen.decode_rows = 10;
  r.gen.rows_hist = {0, 0, 2, 0, 2};
  r.gen.kv_blocks_peak = 9;
  r.gen.preemptions = 1;
  r.ver.busy_ms = 80;
  r.ver.kv_blocks_peak = 3;
  r.ver.evictions = 5;
  r.gen.recomputed_tokens = 48, r.ver.recomputed_tokens = 160;
  RunSummary s = summarize(r);
  EXPECT_DOUBLE_EQ(s.latency_p50_ms, 200);  // of the two that succeeded
  EXPECT_DOUBLE_EQ(s.latency_p90_ms, 280);
  EXPECT_DOUBLE_EQ(s.goodput, 20);
  EXPECT_DOUBLE_EQ(s.mean_rows, 2.5);
  EXPECT_DOUBLE_EQ(s.idle_share, 0.5);
  EXPECT_DOUBLE_EQ(s.idle_slots, 4.0 / 16.0);  // 2 iterations of 2 rows in 4 slots
  EXPECT_EQ(s.recomputed_tokens, 60);  // 100 prefilled, 2 prompts of 20 are first computations
  EXPECT_EQ(s.gen_kv_recomputed, 48);
  EXPECT_EQ(s.ver_kv_recomputed, 160);
  EXPECT_EQ(s.gen_peak_blocks, 9);
  EXPECT_EQ(s.ver_peak_blocks, 3);
  EXPECT_EQ(s.evictions, 5);
  EXPECT_EQ(s.preemptions, 1);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(s.pass_at_n, 1.0);
  EXPECT_DOUBLE_EQ(s.correct_per_min, 2.0);  // 1 correct in half a minute
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.spec_generated, -1) << "no solve speculated";
  EXPECT_EQ(s.chain_tokens, -1) << "no solve reported its straggler chain";
  r.solves[0].spec_generated = 30, r.solves[0].spec_kept = 20, r.solves[0].spec_dropped = 10;
  r.solves[0].spec_pruned_early = 2, r.solves[0].spec_pruned_early_tokens = 7;
  r.solves[1].spec_generated = 5, r.solves[1].spec_kept = 5, r.solves[1].spec_dropped = 0;
  r.solves[0].chain_tokens = 300, r.solves[1].chain_tokens = 500, r.solves[2].chain_tokens = 9999;
  s = summarize(r);
  EXPECT_DOUBLE_EQ(s.chain_tokens, 400) << "the mean of the solves that succeeded";
  EXPECT_EQ(s.spec_generated, 35);
  EXPECT_EQ(s.spec_kept, 25);
  EXPECT_EQ(s.spec_dropped, 10);
  EXPECT_EQ(s.spec_pruned_early, 2) << "a solve without the counter adds nothing";
  EXPECT_EQ(s.spec_pruned_early_tokens, 7);
}

TEST(TtsFigures, PairedDifferencesGiveTheirMeanAndA95PercentInterval) {
  // Differences 1, 0, 0, -1, 1, 1: mean 1/3.
  std::vector<double> a = {1, 1, 0, 0, 1, 1}, b = {0, 1, 0, 1, 0, 0};
  Difference d = paired_difference(a, b);
  EXPECT_EQ(d.pairs, 6);
  EXPECT_DOUBLE_EQ(d.mean, 1.0 / 3);
  // Squared deviations sum to 30/9, so the standard error is sqrt(30/9 / 5 / 6) = 1/3.
  EXPECT_NEAR(d.hi - d.mean, 1.96 / 3, 1e-12);
  EXPECT_NEAR(d.mean - d.lo, d.hi - d.mean, 1e-12);
  EXPECT_EQ(paired_difference({}, {}).pairs, 0);
  Difference one = paired_difference(std::vector<double>{2}, std::vector<double>{1});
  EXPECT_DOUBLE_EQ(one.lo, 1);
  EXPECT_DOUBLE_EQ(one.hi, 1);
}

TEST(TtsFigures, PairedRatiosSkipEmptyPairsAndGiveTheirMedianAndRange) {
  std::vector<double> a = {2, 3, 5, 7}, b = {1, 1, 0, 2};
  Ratio r = paired_ratio(a, b);
  EXPECT_EQ(r.pairs, 3);
  EXPECT_DOUBLE_EQ(r.median, 3);
  EXPECT_DOUBLE_EQ(r.min, 2);
  EXPECT_DOUBLE_EQ(r.max, 3.5);
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0);
}

TEST(TtsFigures, ThePlotDrawsOneLinePerVariantAndPanelWithTheBaselineDashed) {
  std::vector<Point> pts = {{"baseline", 8, 10, 100}, {"flashtts", 8, 12, 90}, {"baseline", 16, 9, 200},
                            {"flashtts", 16, 11, 150}};
  std::string svg = svg_plot(pts, "t <1>");
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = svg.find(s); p != std::string::npos; p = svg.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<polyline data-variant=\"baseline\""), 2u);
  EXPECT_EQ(count("<polyline data-variant=\"flashtts\""), 2u);
  EXPECT_EQ(count("stroke-dasharray"), 3u);  // two baseline lines and its legend entry
  EXPECT_NE(svg.find("t &lt;1&gt;"), std::string::npos);
}

}  // namespace
}  // namespace flashtts::tts
