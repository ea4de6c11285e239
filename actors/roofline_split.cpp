#include "actors/roofline_split.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace flashtts {

namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();

double pass_seconds(const ModelDemand& d, const PassShape& s) { return d.latency.seconds(d.cost.bytes(s), d.cost.flops(s)); }

// Jobs that run at once in `kv_tokens`, each taking `footprint` tokens, as
// evenly as the waves they need allow; 0 when not even one fits.
double concurrent(const ModelDemand& d, double footprint, int64_t kv_tokens) {
  const double fit = std::min({d.jobs, (double)d.max_batch, std::floor((double)kv_tokens / std::max(footprint, 1.0))});
  return fit < 1 ? 0 : std::ceil(d.jobs / std::ceil(d.jobs / fit));
}

// A prefill of `tokens` context tokens the pool could not keep.
double recompute_seconds(const ModelDemand& d, double tokens, bool lm_head) {
  if (tokens <= 0) return 0;
  PassShape s;
  s.rows = 1, s.tokens = (int64_t)tokens, s.out_rows = 0, s.kv_tokens = (int64_t)tokens;
  s.attn_pairs = (int64_t)(tokens * d.ctx_tokens / 2), s.lm_head = lm_head;
  return pass_seconds(d, s);
}

// Context tokens of one iteration's jobs that a pool of `kv_tokens` cannot
// keep until the next iteration needs them (computed again there). The
// working set is U = jobs x footprint. An LRU cache smaller than U keeps less
// than the linear max(0, U - C) suggests (a reuse pattern larger than the
// cache gets almost no hits), so below U the model is U - (1 - a) C, and 0 at
// or above it: a = 0 is the linear model, a = 1 a cache that thrashes. The
// misses measured at the pool's current size fit it: beyond the linear ones
// they give a; fewer than those, or any at a pool the estimate says holds U,
// mean the working set is not U: it is that pool plus the misses.
double lost_tokens(const ModelDemand& d, double footprint, double kv_tokens) {
  double u = d.jobs * footprint, a = 0;
  const double c0 = (double)d.miss_pool_tokens, m0 = d.jobs * d.miss_tokens;
  if (c0 > 0) {
    if (c0 < u && m0 >= u - c0) a = std::min(1.0, (m0 - (u - c0)) / c0);
    else if (c0 < u || m0 > 0.05 * c0) u = c0 + m0;
  }
  return kv_tokens >= u ? 0 : u - (1 - a) * kv_tokens;
}

}  // namespace

double predict_generation(const ModelDemand& d, int64_t kv_tokens) {
  if (d.jobs <= 0) return 0;
  if (kv_tokens < d.min_tokens) return kNever;
  const double footprint = (d.ctx_tokens + d.new_tokens) / std::max(d.sharing, 1.0);
  const double r = concurrent(d, footprint, kv_tokens);
  if (r < 1) return kNever;
  const double waves = std::ceil(d.jobs / r);
  PassShape s;
  const double ctx = d.ctx_tokens + d.new_tokens / 2;  // the mean context a decode pass reads
  s.rows = (int64_t)r, s.tokens = (int64_t)r, s.out_rows = (int64_t)r;
  s.kv_tokens = (int64_t)(r * ctx), s.attn_pairs = (int64_t)(r * ctx), s.lm_head = true;
  const double decode = waves * d.new_tokens * pass_seconds(d, s);
  // The next iteration's jobs continue these: what does not stay in the pool
  // is prefilled again.
  return decode + recompute_seconds(d, lost_tokens(d, footprint, (double)kv_tokens), true);
}

double predict_scoring(const ModelDemand& d, int64_t kv_tokens) {
  if (d.jobs <= 0) return 0;
  if (kv_tokens < d.min_tokens) return kNever;
  const double footprint = d.ctx_tokens / std::max(d.sharing, 1.0);
  const double r = concurrent(d, footprint, kv_tokens);
  if (r < 1) return kNever;
  const double waves = std::ceil(d.jobs / r);
  PassShape s;
  s.rows = (int64_t)r, s.tokens = (int64_t)(r * d.new_tokens), s.out_rows = (int64_t)r;
  s.kv_tokens = (int64_t)(r * d.ctx_tokens), s.attn_pairs = (int64_t)(r * d.new_tokens * d.ctx_tokens);
  s.lm_head = false;
  return waves * pass_seconds(d, s) + recompute_seconds(d, lost_tokens(d, footprint, (double)kv_tokens), false);
}

Expected<MemorySplit> RooflineSplit::split(int64_t budget, const ModelFootprint& g, const ModelFootprint& v) {
  // Nothing is known of the work yet: start where the static split would.
  return make_static_split(initial_share_)->split(budget, g, v);
}

std::optional<MemorySplit> RooflineSplit::rebalance(const MemoryState& st) {
  reason_.clear();
  if (!st.gen.known() || !st.ver.known()) return std::nullopt;
  auto predict = [&](int64_t gen_bytes) {
    return predict_generation(st.gen, st.generator.tokens(gen_bytes)) +
           predict_scoring(st.ver, st.verifier.tokens(st.kv_bytes - gen_bytes));
  };
  const double now = predict(st.current.generator_kv_bytes);
  double best = now;
  int64_t best_bytes = st.current.generator_kv_bytes;
  const int n = std::max(2, (int)std::lround(1.0 / o_.step));
  for (int k = 1; k < n; ++k) {
    const int64_t b = (int64_t)((double)st.kv_bytes * k / n);
    if (b < st.generator.block_bytes() || st.kv_bytes - b < st.verifier.block_bytes()) continue;
    const double t = predict(b);
    if (t < best) best = t, best_bytes = b;
  }
  char buf[200];
  std::snprintf(buf, sizeof buf, "iteration predicted %.1f ms at %.0f%% for the generator, %.1f ms at %.0f%%",
                now * 1e3, 100.0 * (double)st.current.generator_kv_bytes / (double)st.kv_bytes, best * 1e3,
                100.0 * (double)best_bytes / (double)st.kv_bytes);
  reason_ = buf;
  if (best_bytes == st.current.generator_kv_bytes || st.since_move_s < o_.min_dwell_s) return std::nullopt;
  if (std::isfinite(now) && now <= best * (1 + o_.hysteresis)) return std::nullopt;
  // Moving costs the shrinking pool's KV above its new size: at worst all of
  // it is computed again, once. The gain over the horizon must pay for it.
  const bool gen_shrinks = best_bytes < st.current.generator_kv_bytes;
  const int64_t moved = std::abs(best_bytes - st.current.generator_kv_bytes);
  const double cost = gen_shrinks ? recompute_seconds(st.gen, (double)st.generator.tokens(moved), true)
                                  : recompute_seconds(st.ver, (double)st.verifier.tokens(moved), false);
  if (std::isfinite(now) && (now - best) * o_.horizon < cost) return std::nullopt;
  return MemorySplit{best_bytes, st.kv_bytes - best_bytes};
}

}  // namespace flashtts
