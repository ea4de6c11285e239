// The figures of the test-time-scaling benchmark (bench/tts.cpp), as pure
// functions of what the server reports, so they can be checked on a
// hand-made trace: the actors' cumulative counters before and after a run
// (the `stats` request), and each solve's result.
//
//   goodput          the paper's: mean tokens per completed beam / mean beam
//                    completion time (the server computes it per request)
//   idle share       of the decode iterations (those that sampled tokens),
//                    the share that sampled fewer rows than the searches in
//                    flight have beams: the device waiting for stragglers
//   idle slots       of those iterations' beam slots (beams x iterations),
//                    the share no row filled
//   recomputed       context tokens the generator computed at admission
//                    beyond each prompt's first computation (the partial
//                    block of every step, evicted prefixes, preemptions)
//   straggler chain  beam search: per iteration the most tokens a beam's
//                    step generated, summed over the iterations; the decode
//                    passes the lockstep cannot shorten, which speculation
//                    cuts (tools/lockstep_model.py models it)
//
// Thread contract: pure functions and plain values; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "messages/msgpack_io.h"
#include "runtime/base/status.h"

namespace flashtts::tts {

// One GPU actor's cumulative counters (from its stats map).
struct Counters {
  double busy_ms = 0;
  int64_t iterations = 0, decode_iterations = 0, decode_rows = 0, prefill_tokens = 0;
  int64_t preemptions = 0, evictions = 0, tokens_computed = 0;
  int64_t recomputed_tokens = 0;  // KV of full blocks computed again after their eviction
  int64_t kv_blocks_peak = 0, kv_blocks_used = 0;
  int64_t kv_blocks_needed_peak = 0;  // the working set with its reuse (KvCacheStats::needed_peak_blocks)
  int64_t kv_blocks_total = 0, kv_resizes = 0;  // the pool at the end; grants that resized it
  int64_t weight_uploads = 0;  // memory.offload: the weights' trips back onto the device
  double weight_upload_ms = 0;  // and their device time
  std::vector<int64_t> rows_hist;  // [rows] = decode iterations that sampled that many rows
};

// Reads a generator's or verifier's stats map (fields it lacks stay 0).
Expected<Counters> read_counters(const msg::MapReader& stats);

// after - before, for one run; the peak is after's (peaks are reset at the
// run's start).
Counters delta(const Counters& after, const Counters& before);

// The share of decode iterations in `hist` with fewer than `beams` rows; 0
// when there were none.
double idle_share(std::span<const int64_t> hist, int64_t beams);

// The share of decode slots left empty: over the decode iterations in
// `hist`, the rows short of `beams` (none when an iteration has as many or
// more) per beams x iterations; 0 when there were none. Unlike idle_share,
// an iteration one row short counts for one slot, not as an idle iteration.
double idle_slots(std::span<const int64_t> hist, int64_t beams);

// decode_rows / decode_iterations (0 when none).
double mean_rows(const Counters& c);

// What one solve's result says.
struct SolveFigures {
  double latency_ms = 0, goodput = 0;
  int64_t policy_tokens = 0, prompt_tokens = 0;
  bool correct = false, pass = false;  // weighted-vote answer right; some completion right
  bool failed = false;
  std::string error;
  // Speculative beam extension (the result's stats.speculation; -1 when the
  // search did not speculate): tokens written ahead, kept by survivors, dropped;
  // speculations dropped early (their beam certain to be pruned) and their tokens.
  int64_t spec_generated = -1, spec_kept = -1, spec_dropped = -1;
  int64_t spec_pruned_early = -1, spec_pruned_early_tokens = -1;
  int64_t chain_tokens = -1;  // stats.straggler_chain_tokens (beam search; -1: none)
};

// One run: `requests` solves at once on one variant.
struct RunFigures {
  std::vector<SolveFigures> solves;
  double wall_ms = 0;
  Counters gen, ver;  // deltas over the run
  int64_t beams = 0;  // beams of all the run's searches together
};

// Figures of a run for the table and the JSON line.
struct RunSummary {
  double latency_p50_ms = 0, latency_p90_ms = 0, goodput = 0;
  double gen_busy_ms = 0, ver_busy_ms = 0, mean_rows = 0, idle_share = 0, idle_slots = 0;
  int64_t gen_peak_blocks = 0, ver_peak_blocks = 0, evictions = 0, preemptions = 0;
  // The generator's prefill tokens beyond the prompts: every token of a
  // beam it had computed before and computed again (after an eviction, a
  // preemption, or in a partial block), its own model's measure.
  int64_t recomputed_tokens = 0;
  // Each model's KV computed again after its eviction (Counters::
  // recomputed_tokens: full blocks only), the measure both models share.
  int64_t gen_kv_recomputed = 0, ver_kv_recomputed = 0;
  // The pools at the end of the run (blocks), and how often they were resized
  // in it (an elastic memory split).
  int64_t gen_pool_blocks = 0, ver_pool_blocks = 0, resizes = 0;
  // memory.offload: turns on the device (weights brought back) and the
  // device seconds the copies took.
  int64_t weight_uploads = 0;
  double weight_upload_s = 0;
  // The passes behind the busy times: the generator's forward passes and
  // those that sampled, and the PRM tokens the verifier computed.
  int64_t gen_passes = 0, gen_decode_passes = 0, ver_tokens_computed = 0;
  double accuracy = 0, pass_at_n = 0, correct_per_min = 0;
  int failed = 0;
  // Speculative tokens of all the run's solves; -1 when none speculated.
  int64_t spec_generated = -1, spec_kept = -1, spec_dropped = -1;
  int64_t spec_pruned_early = -1, spec_pruned_early_tokens = -1;  // (SolveFigures')
  double chain_tokens = -1;  // the solves' mean straggler chain; -1 when none reported it
};
RunSummary summarize(const RunFigures& r);

// The p-th percentile (0..100) of `v` by linear interpolation; 0 when empty.
double percentile(std::vector<double> v, double p);

// Paired ratios a[i] / b[i] (pairs with b[i] == 0 are skipped): their
// median and range.
struct Ratio {
  double median = 0, min = 0, max = 0;
  int pairs = 0;
};
Ratio paired_ratio(std::span<const double> a, std::span<const double> b);

// Paired differences a[i] - b[i]: their mean and its 95% interval (normal
// approximation, mean +- 1.96 standard errors; the interval is the mean
// alone for one pair).
struct Difference {
  double mean = 0, lo = 0, hi = 0;
  int pairs = 0;
};
Difference paired_difference(std::span<const double> a, std::span<const double> b);

// An SVG of goodput and p50 latency against N (log2 axis), one polyline per
// variant and panel (`data-variant`), the variant named "baseline" dashed.
struct Point {
  std::string variant;
  int n = 0;
  double goodput = 0, latency_ms = 0;
};
std::string svg_plot(std::span<const Point> points, const std::string& title);

}  // namespace flashtts::tts
