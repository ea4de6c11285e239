#include "actors/roofline_split.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>
#include <vector>

namespace flashtts {

namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();

double pass_seconds(const ModelDemand& d, const PassShape& s) { return d.latency.seconds(d.cost.bytes(s), d.cost.flops(s)); }

// Jobs that run at once in `kv_tokens`, each taking `footprint` tokens and
// counted by the scheduler's admission as admit_tokens; 0 when not even one
// fits.
double concurrent(const ModelDemand& d, double footprint, int64_t kv_tokens) {
  const double each = std::max({footprint, d.admit_tokens, 1.0});
  const double fit = std::min({d.jobs, (double)d.max_batch, std::floor((double)kv_tokens / each)});
  return fit < 1 ? 0 : fit;
}

// A prefill of `tokens` context tokens the pool could not keep.
double recompute_seconds(const ModelDemand& d, double tokens, bool lm_head) {
  if (tokens <= 0) return 0;
  PassShape s;
  s.rows = 1, s.tokens = (int64_t)tokens, s.out_rows = 0, s.kv_tokens = (int64_t)tokens;
  s.attn_pairs = (int64_t)(tokens * d.ctx_tokens / 2), s.lm_head = lm_head;
  return pass_seconds(d, s);
}

// What a pool short of the working set loses: U - (1 - a) C below U.
struct Loss {
  double u = 0, a = 0;
};

// The working set is U = held jobs x footprint. An LRU cache smaller than U
// keeps less than the linear max(0, U - C) suggests (a reuse pattern larger
// than the cache gets almost no hits), so below U the model is U - (1 - a) C,
// and 0 at or above it: a = 0 is the linear model, a = 1 a cache that
// thrashes. The misses measured at the pool's current size fit it: beyond
// the linear ones, up to U, they give a. Fewer than the linear ones, any at
// a pool the estimate says holds U, or more than all of U (the jobs computed
// shared prefixes again within an iteration, each time one of them came
// back) mean the working set is not U: it is that pool plus the misses, and
// the loss linear below it.
Loss fit_loss(const ModelDemand& d, double footprint) {
  const double held = d.held();
  Loss l{held * footprint, 0};
  const double c0 = (double)d.miss_pool_tokens, m0 = held * d.miss_tokens;
  if (c0 > 0) {
    if (c0 < l.u && m0 >= l.u - c0 && m0 <= l.u) l.a = (m0 - (l.u - c0)) / c0;
    else if (c0 < l.u || m0 > 0.05 * c0) l.u = c0 + m0;
  }
  return l;
}

// Context tokens of one iteration's jobs that a pool of `kv_tokens` cannot
// keep until the next iteration needs them (computed again there).
double lost_tokens(const ModelDemand& d, double footprint, double kv_tokens) {
  const Loss l = fit_loss(d, footprint);
  return kv_tokens >= l.u ? 0 : l.u - (1 - l.a) * kv_tokens;
}

// KV tokens one job holds: its context, shared prefixes counted once, and
// generating, the tokens it writes, which no other job shares. Measured over
// the model's last iteration of jobs where it can be (ModelDemand::
// job_kv_tokens); else from the sharing among the jobs running at once.
double working_footprint(const ModelDemand& d, bool generation) {
  if (d.job_kv_tokens > 0) return d.job_kv_tokens;
  return d.ctx_tokens / std::max(d.sharing, 1.0) + (generation ? d.new_tokens : 0);
}

}  // namespace

double predict_generation(const ModelDemand& d, int64_t kv_tokens) {
  if (kv_tokens < d.min_tokens) return kNever;
  if (d.jobs <= 0) return 0;
  const double footprint = working_footprint(d, true);
  const double r = concurrent(d, footprint, kv_tokens);
  if (r < 1) return kNever;
  const double rounds = d.jobs / r;  // continuous batching: a freed row takes the next job
  PassShape s;
  const double ctx = d.ctx_tokens + d.new_tokens / 2;  // the mean context a decode pass reads
  s.rows = (int64_t)r, s.tokens = (int64_t)r, s.out_rows = (int64_t)r;
  s.kv_tokens = (int64_t)(r * ctx), s.attn_pairs = (int64_t)(r * ctx), s.lm_head = true;
  const double decode = rounds * d.new_tokens * pass_seconds(d, s);
  // The next iteration's jobs continue these: what does not stay in the pool
  // is prefilled again.
  return decode + recompute_seconds(d, lost_tokens(d, footprint, (double)kv_tokens), true);
}

double predict_scoring(const ModelDemand& d, int64_t kv_tokens) {
  if (kv_tokens < d.min_tokens) return kNever;
  if (d.jobs <= 0) return 0;
  const double footprint = working_footprint(d, false);
  const double r = concurrent(d, footprint, kv_tokens);
  if (r < 1) return kNever;
  const double rounds = d.jobs / r;
  PassShape s;
  s.rows = (int64_t)r, s.tokens = (int64_t)(r * d.new_tokens), s.out_rows = (int64_t)r;
  s.kv_tokens = (int64_t)(r * d.ctx_tokens), s.attn_pairs = (int64_t)(r * d.new_tokens * d.ctx_tokens);
  s.lm_head = false;
  return rounds * pass_seconds(d, s) + recompute_seconds(d, lost_tokens(d, footprint, (double)kv_tokens), false);
}

Expected<MemorySplit> RooflineSplit::split(int64_t budget, const ModelFootprint& g, const ModelFootprint& v) {
  // Nothing is known of the work yet: start where the static split would.
  return make_static_split(initial_share_)->split(budget, g, v);
}

namespace {

// The iteration the demand in `st` predicts with `gen_bytes` of `kv_bytes`
// for the generator and the rest for the verifier.
double predict_split(const MemoryState& st, int64_t kv_bytes, int64_t gen_bytes) {
  return predict_generation(st.gen, st.generator.tokens(gen_bytes)) +
         predict_scoring(st.ver, st.verifier.tokens(kv_bytes - gen_bytes));
}

// Splits of the grid of n steps (k / n of kv_bytes for the generator) that
// leave each pool a block, with their predicted iterations.
int grid_steps(double step) { return std::max(2, (int)std::lround(1.0 / step)); }
std::vector<std::pair<int64_t, double>> predict_grid(const MemoryState& st, int64_t kv_bytes, int n) {
  std::vector<std::pair<int64_t, double>> grid;  // generator bytes, predicted iteration
  for (int k = 1; k < n; ++k) {
    const int64_t b = (int64_t)((double)kv_bytes * k / n);
    if (b < st.generator.block_bytes() || kv_bytes - b < st.verifier.block_bytes()) continue;
    grid.push_back({b, predict_split(st, kv_bytes, b)});
  }
  return grid;
}

}  // namespace

BestSplit predict_best_split(const MemoryState& st, int64_t kv_bytes, double step) {
  BestSplit best{0, kNever};
  for (const auto& [b, t] : predict_grid(st, kv_bytes, grid_steps(step)))
    if (t < best.seconds) best = {b, t};
  return best;
}

std::optional<MemorySplit> RooflineSplit::rebalance(const MemoryState& st) {
  reason_.clear();
  const bool was_deferring = deferring_;
  deferring_ = false;
  // A model with no jobs (its latency model known) predicts no time at any
  // size; it is decided on only while the other's next job cannot run at
  // its pool: the other's jobs may wait on exactly that job (a verifier
  // that cannot score leaves the generator nothing to do), so waiting for
  // both to have work would wait forever.
  auto idle = [](const ModelDemand& d) { return d.jobs <= 0 && d.latency.known(); };
  if (!(st.gen.known() || idle(st.gen)) || !(st.ver.known() || idle(st.ver))) return std::nullopt;
  auto predict = [&](int64_t gen_bytes) { return predict_split(st, st.kv_bytes, gen_bytes); };
  const double now = predict(st.current.generator_kv_bytes);
  if ((!st.gen.known() || !st.ver.known()) && std::isfinite(now)) return std::nullopt;
  const int n = grid_steps(o_.step);
  const auto grid = predict_grid(st, st.kv_bytes, n);  // generator bytes, predicted iteration
  double best = now;
  for (const auto& [b, t] : grid) best = std::min(best, t);
  // Where several splits predict the best time within kTie (both working
  // sets fit at each), the one that leaves both pools the most room over
  // their working sets, as a share of them: contexts grow with every step.
  constexpr double kTie = 0.01;
  const double u_gen = fit_loss(st.gen, working_footprint(st.gen, true)).u;
  const double u_ver = fit_loss(st.ver, working_footprint(st.ver, false)).u;
  auto room = [&](int64_t gen_bytes) {
    return std::min((double)st.generator.tokens(gen_bytes) / std::max(u_gen, 1.0),
                    (double)st.verifier.tokens(st.kv_bytes - gen_bytes) / std::max(u_ver, 1.0));
  };
  int64_t best_bytes = st.current.generator_kv_bytes;
  if (!(now <= best * (1 + kTie))) best_bytes = -1;
  for (const auto& [b, t] : grid)
    if (t <= best * (1 + kTie) && (best_bytes < 0 || room(b) > room(best_bytes))) best_bytes = b;
  best = best_bytes == st.current.generator_kv_bytes ? now : predict(best_bytes);
  char buf[320];
  std::snprintf(buf, sizeof buf, "iteration predicted %.1f ms at %.0f%% for the generator, %.1f ms at %.0f%%",
                now * 1e3, 100.0 * (double)st.current.generator_kv_bytes / (double)st.kv_bytes, best * 1e3,
                100.0 * (double)best_bytes / (double)st.kv_bytes);
  reason_ = buf;
  for (const auto& [name, d] : {std::pair{"generator", &st.gen}, std::pair{"verifier", &st.ver}}) {
    std::snprintf(buf, sizeof buf,
                  "; %s %.0f jobs (%.0f held) of %.0f + %.0f tokens, sharing %.1f, %.0f KV tokens a job (%.0f admitted), "
                  "misses %.0f a job at %lld",
                  name, d->jobs, d->held(), d->ctx_tokens, d->new_tokens, d->sharing, d->job_kv_tokens, d->admit_tokens,
                  d->miss_tokens,
                  (long long)d->miss_pool_tokens);
    reason_ += buf;
  }
  if (best_bytes == st.current.generator_kv_bytes || st.since_move_s < o_.min_dwell_s) return std::nullopt;
  // After a move the next is decided from the misses measured at the new
  // sizes (the jobs the grant named have settled), not from those of the
  // sizes before, for at most max_wait_s, and not while a job cannot run.
  if (last_dir_ != 0 && st.since_move_s < o_.max_wait_s && std::isfinite(now)) {
    auto stale = [](const ModelDemand& d, const ModelFootprint& f, int64_t bytes) {
      return d.miss_pool_tokens > 0 && std::llabs(d.miss_pool_tokens - f.tokens(bytes)) >= f.block_size;
    };
    if (stale(st.gen, st.generator, st.current.generator_kv_bytes) ||
        stale(st.ver, st.verifier, st.current.verifier_kv_bytes)) {
      reason_ += "; waiting for the misses at the new sizes";
      return std::nullopt;
    }
  }
  // Going back the way the last move came needs a larger gain for each
  // recent reversal (within reversal_memory_s, whether in a row or with a
  // step the same way between): two splits whose measured costs are close
  // do not trade places every few seconds.
  const int dir = best_bytes < st.current.generator_kv_bytes ? -1 : 1;
  int recent = 0;
  for (double age : reversal_ages_) recent += age + st.since_move_s <= o_.reversal_memory_s;
  const int reversals = dir == -last_dir_ ? recent + 1 : 0;
  const double hysteresis = o_.hysteresis * (1 << std::min(reversals, 10));
  if (std::isfinite(now) && now <= best * (1 + hysteresis)) {
    if (reversals > 0) {
      std::snprintf(buf, sizeof buf, "; back the way it came needs %.0f%%", 100 * hysteresis);
      reason_ += buf;
    }
    return std::nullopt;
  }
  // Moving costs the shrinking pool's working set above its new size: at
  // worst it is all computed again, once (free and dead cached blocks cost
  // nothing to give back). The gain over the horizon must pay for it.
  const bool gen_shrinks = best_bytes < st.current.generator_kv_bytes;
  const ModelDemand& d = gen_shrinks ? st.gen : st.ver;
  const ModelFootprint& f = gen_shrinks ? st.generator : st.verifier;
  const int64_t from = gen_shrinks ? st.current.generator_kv_bytes : st.current.verifier_kv_bytes;
  const int64_t to = gen_shrinks ? best_bytes : st.kv_bytes - best_bytes;
  const double held = std::min((double)f.tokens(from), d.held() * working_footprint(d, gen_shrinks));
  const double cost = recompute_seconds(d, held - (double)f.tokens(to), gen_shrinks);
  if (std::isfinite(now) && (now - best) * o_.horizon < cost) {
    std::snprintf(buf, sizeof buf, "; moving costs %.1f ms, more than %g iterations gain", cost * 1e3, o_.horizon);
    reason_ += buf;
    return std::nullopt;
  }
  // The move goes at most max_step of the memory toward the best split; the
  // next decides again from what the models measured there (their misses
  // above all), so a prediction that is wrong far from the measured split
  // costs at most one step.
  const double limit = o_.max_step * (double)st.kv_bytes;
  if (std::abs((double)(best_bytes - st.current.generator_kv_bytes)) > limit) {
    const double step_to = (double)st.current.generator_kv_bytes + (gen_shrinks ? -limit : limit);
    const int k = std::clamp((int)std::lround(step_to / (double)st.kv_bytes * n), 1, n - 1);
    best_bytes = (int64_t)((double)st.kv_bytes * k / n);
  }
  // A move that would preempt the shrinking model's running jobs waits for
  // them to fit (or to finish), for at most max_preempt_wait_s; not while
  // the other model's next job cannot run (it would wait all that time).
  const int64_t to_tokens = f.tokens(gen_shrinks ? best_bytes : st.kv_bytes - best_bytes);
  if (d.pinned_tokens > to_tokens && std::isfinite(now)) {
    if (!was_deferring) deferred_from_s_ = st.since_move_s;
    if (st.since_move_s - deferred_from_s_ < o_.max_preempt_wait_s) {
      deferring_ = true;
      std::snprintf(buf, sizeof buf, "; waiting until the %s's running jobs fit %lld tokens (they reach %lld)",
                    gen_shrinks ? "generator" : "verifier", (long long)to_tokens, (long long)d.pinned_tokens);
      reason_ += buf;
      return std::nullopt;
    }
  }
  std::erase_if(reversal_ages_, [&](double& age) { return (age += st.since_move_s) > o_.reversal_memory_s; });
  if (reversals > 0) reversal_ages_.push_back(0);
  last_dir_ = dir;
  return MemorySplit{best_bytes, st.kv_bytes - best_bytes};
}

}  // namespace flashtts
