#include "gpu/latency_model.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <vector>

#include "gpu/engine.h"
#include "gpu/sample_hash.h"

namespace flashtts {

namespace {

// Weights of one layer's linear maps (elements).
int64_t layer_matrix_params(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = int64_t(c.n_heads) * c.head_dim, kv = int64_t(c.n_kv_heads) * c.head_dim;
  return h * q + 2 * h * kv + q * h + 3 * h * int64_t(c.intermediate_size);
}

bool has_prm_head(const ModelConfig& c) {
  return c.prm.kind == PrmKind::Classifier || c.prm.kind == PrmKind::ValueHead;
}

}  // namespace

int64_t weight_params(const ModelConfig& c) {
  const int64_t embed = int64_t(c.vocab_size) * c.hidden_size;
  int64_t e = embed + int64_t(c.n_layers) * layer_matrix_params(c);
  if (!c.tie_embeddings && !has_prm_head(c)) e += embed;
  if (has_prm_head(c)) e += int64_t(c.hidden_size) * c.hidden_size;
  return e;
}

ModelCost model_cost(const ModelConfig& c, int64_t weight_bytes, int64_t kv_bytes_per_token) {
  ModelCost m;
  m.weight_bytes = (double)weight_bytes;
  m.params = (double)weight_params(c);
  m.kv_bytes_per_token = (double)kv_bytes_per_token;
  m.layer_params = (double)(int64_t(c.n_layers) * layer_matrix_params(c));
  m.lm_head_params = (double)(int64_t(c.vocab_size) * c.hidden_size);
  m.prm_head_params = (double)(int64_t(c.hidden_size) * c.hidden_size);
  m.hidden = c.hidden_size;
  m.attn_flops_per_pair = 4.0 * c.n_layers * c.n_heads * c.head_dim;
  return m;
}

double ModelCost::bytes(const PassShape& s) const {
  if (s.tokens <= 0) return 0;
  // The stored dtype's size (norms and biases spread over the matrices).
  const double per_param = params > 0 ? weight_bytes / params : 0;
  const double head = s.out_rows > 0 ? (s.lm_head ? lm_head_params : prm_head_params) : 0;
  return per_param * (layer_params + head + double(s.tokens) * hidden) +
         kv_bytes_per_token * double(s.kv_tokens + s.tokens);
}

double ModelCost::flops(const PassShape& s) const {
  if (s.tokens <= 0) return 0;
  const double head = s.out_rows > 0 ? (s.lm_head ? lm_head_params : prm_head_params) : 0;
  return 2.0 * double(s.tokens) * layer_params + 2.0 * double(s.out_rows) * head +
         attn_flops_per_pair * double(s.attn_pairs);
}

double LatencyConstants::seconds(double bytes, double flops) const {
  return overhead_s + std::max(bytes * s_per_byte, flops * s_per_flop);
}

// ---------------------------------------------------------------------------
// The fit.
//
// A pass is memory-bound when b·bytes >= c·flops, i.e. when its FLOPs per
// byte are at most b/c: every assignment of passes to the two sides that
// some constants make is a split of the passes sorted by FLOPs per byte. So
// the fit tries every split (n + 1 of them) instead of iterating from a
// start that may hold it in a local minimum: for each, nonnegative least
// squares of t = a + b·bytes·[memory] + c·flops·[compute], then the
// roofline's own error at those constants. Errors are relative (each pass
// weighted by 1/t), because passes span orders of magnitude and the arbiter
// compares times by their ratios.

namespace {

// Passes each side of the ridge needs before its slope counts.
constexpr int kMinSide = 3;
// Two slopes are told apart when their fit has at most this share of the
// best one-slope fit's error...
constexpr double kTwoSlopeGain = 0.5;
// ...and one slope misses the passes by more than 0.1% (mean squared
// relative error 1e-6): otherwise one line explains them all.
constexpr double kOneSlopeFloor = 1e-6;
// FLOPs per byte the passes must span before one regime bounds the other slope.
constexpr double kOneRegimeSpan = 8;
// A pass predicted within this relative error is no reason to refit at once.
constexpr double kPredictedError = 0.05;

// argmin over x >= 0 of x'Gx - 2g'x for a 3 x 3 symmetric G: the optimum is
// the unconstrained one on its support, so try all 8 supports and keep the
// best feasible one (its value there is -g'x).
std::array<double, 3> nnls3(const double G[3][3], const double g[3]) {
  std::array<double, 3> best{0, 0, 0};
  double best_value = 0;
  for (int mask = 1; mask < 8; ++mask) {
    int idx[3], n = 0;
    for (int i = 0; i < 3; ++i)
      if (mask >> i & 1) idx[n++] = i;
    double A[3][4];
    for (int r = 0; r < n; ++r) {
      for (int k = 0; k < n; ++k) A[r][k] = G[idx[r]][idx[k]];
      A[r][n] = g[idx[r]];
    }
    double scale = 0;
    for (int r = 0; r < n; ++r) scale = std::max(scale, G[idx[r]][idx[r]]);
    bool singular = false;
    for (int col = 0; col < n; ++col) {
      int piv = col;
      for (int r = col + 1; r < n; ++r)
        if (std::abs(A[r][col]) > std::abs(A[piv][col])) piv = r;
      if (!(std::abs(A[piv][col]) > 1e-12 * scale)) {
        singular = true;
        break;
      }
      std::swap(A[col], A[piv]);
      for (int r = 0; r < n; ++r) {
        if (r == col) continue;
        const double f = A[r][col] / A[col][col];
        for (int k = col; k <= n; ++k) A[r][k] -= f * A[col][k];
      }
    }
    if (singular) continue;
    std::array<double, 3> x{0, 0, 0};
    double value = 0;
    bool feasible = true;
    for (int r = 0; r < n; ++r) {
      x[idx[r]] = A[r][n] / A[r][r];
      feasible = feasible && x[idx[r]] >= 0;
      value -= g[idx[r]] * x[idx[r]];
    }
    if (feasible && value < best_value) best = x, best_value = value;
  }
  return best;
}

}  // namespace

void LatencyModel::add(const PassShape& s, double seconds) {
  const double bytes = cost_.bytes(s), flops = cost_.flops(s);
  if (!(seconds > 0) || !std::isfinite(seconds) || bytes <= 0 || flops <= 0) return;
  samples_.push_back({bytes, flops, seconds});
  while ((int32_t)samples_.size() > window_) samples_.pop_front();
  // A pass the constants already predict changes the fit little: refit only
  // after a window's eighth of them, or at once on one they miss.
  ++added_since_fit_;
  if (known() && std::abs(c_.seconds(bytes, flops) / seconds - 1) <= kPredictedError &&
      added_since_fit_ < std::max(1, window_ / 8))
    return;
  added_since_fit_ = 0;

  const size_t n = samples_.size();
  if (n < 2 * kMinSide) return;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) {
    return samples_[i].flops / samples_[i].bytes < samples_[j].flops / samples_[j].bytes;
  });
  double bmax = 0, fmax = 0;
  for (const Sample& x : samples_) bmax = std::max(bmax, x.bytes), fmax = std::max(fmax, x.flops);

  // Rows (1, bytes, flops) / t against target 1, bytes and flops scaled to
  // at most 1 so that the 3 x 3 systems are well conditioned. The memory
  // side's sums are prefix sums over the sorted passes; the compute side's
  // are the totals minus those.
  std::vector<double> ux(n + 1, 0), xx(n + 1, 0), x1(n + 1, 0), uy(n + 1, 0), yy(n + 1, 0), y1(n + 1, 0);
  double uu = 0, u1 = 0;
  for (size_t k = 0; k < n; ++k) {
    const Sample& p = samples_[order[k]];
    const double u = 1 / p.seconds, x = p.bytes / bmax * u, y = p.flops / fmax * u;
    uu += u * u, u1 += u;
    ux[k + 1] = ux[k] + u * x, xx[k + 1] = xx[k] + x * x, x1[k + 1] = x1[k] + x;
    uy[k + 1] = uy[k] + u * y, yy[k + 1] = yy[k] + y * y, y1[k + 1] = y1[k] + y;
  }
  auto roofline_error = [&](const LatencyConstants& c) {
    double e = 0;
    for (const Sample& p : samples_) {
      const double r = c.seconds(p.bytes, p.flops) / p.seconds - 1;
      e += r * r;
    }
    return e / (double)n;
  };

  // Each split's fit is judged first by its own residual, sum (theta.r - 1)^2
  // = theta'G theta - 2 theta'g + n over the rows as split, which the sums
  // give in O(1); only the best split and the two one-slope fits (all passes
  // on one side) are then judged as rooflines, each pass on the side its
  // max() puts it, in O(n). (Judging every split as a roofline made each
  // add() O(n^2), on the engine's hot path.)
  LatencyConstants split, one;
  double split_residual = std::numeric_limits<double>::infinity(), one_error = split_residual;
  for (size_t k = 0; k <= n; ++k) {
    const double G[3][3] = {{uu, ux[k], uy[n] - uy[k]}, {ux[k], xx[k], 0}, {uy[n] - uy[k], 0, yy[n] - yy[k]}};
    const double g[3] = {u1, x1[k], y1[n] - y1[k]};
    const std::array<double, 3> th = nnls3(G, g);
    const LatencyConstants c{th[0], th[1] / bmax, th[2] / fmax};
    if (k == 0 || k == n) {
      const double e = roofline_error(c);
      if (e < one_error) one_error = e, one = c;
      continue;
    }
    double residual = (double)n;
    for (int i = 0; i < 3; ++i) {
      residual -= 2 * th[i] * g[i];
      for (int j = 0; j < 3; ++j) residual += th[i] * G[i][j] * th[j];
    }
    if (residual < split_residual) split_residual = residual, split = c;
  }
  LatencyConstants best = one;
  double best_error = one_error;
  if (std::isfinite(split_residual)) {
    const double e = roofline_error(split);
    if (e < best_error) best_error = e, best = split;
  }
  int32_t memory_bound = 0;
  for (const Sample& p : samples_) memory_bound += p.bytes * best.s_per_byte >= p.flops * best.s_per_flop;
  if (best.known() && memory_bound >= kMinSide && (int32_t)n - memory_bound >= kMinSide &&
      best_error <= kTwoSlopeGain * one_error && one_error > kOneSlopeFloor) {
    c_ = best;
    fitted_on_ = (int32_t)n;
    bounded_ = false;
    return;
  }
  if (known() && !bounded_) return;
  // Both slopes not told apart yet, and one regime in passes that span a
  // wide range of FLOPs per byte (decodes alone; or a small model on a CPU,
  // its weights in cache): the other slope is the largest that keeps every
  // pass seen on the side it was seen on, until passes tell it.
  const double lowest = samples_[order.front()].flops / samples_[order.front()].bytes;
  const double highest = samples_[order.back()].flops / samples_[order.back()].bytes;
  if (highest < kOneRegimeSpan * lowest) return;
  if (one.s_per_byte > 0) one.s_per_flop = one.s_per_byte / highest;
  else one.s_per_byte = one.s_per_flop * lowest;
  c_ = one;
  fitted_on_ = (int32_t)n;
  bounded_ = true;
}

std::string LatencyModel::describe() const {
  if (!known()) return "not measured yet";
  char buf[200];
  std::snprintf(buf, sizeof buf, "overhead %.1f us, %.1f GB/s, %.1f GFLOP/s (fitted to %d passes%s)",
                c_.overhead_s * 1e6, 1e-9 / c_.s_per_byte, 1e-9 / c_.s_per_flop, fitted_on_,
                bounded_ ? " of one regime: the other rate is a bound" : "");
  return buf;
}

// ---------------------------------------------------------------------------
// Calibration.

OutputKind serving_output_kind(const ModelConfig& c) {
  const auto label = [&](int32_t id) { return id >= 0 && id < c.vocab_size; };
  switch (c.prm.kind) {
    case PrmKind::None:
      return OutputKind::Tokens;
    case PrmKind::Classifier:
    case PrmKind::ValueHead:
      return OutputKind::Score;
    case PrmKind::LmLogits:
      // Its Score needs the label ids a tokenizer resolves; Logits reads the same head.
      return label(c.prm.good_token_id) && label(c.prm.bad_token_id) ? OutputKind::Score : OutputKind::Logits;
  }
  return OutputKind::Hidden;
}

namespace {

using Clock = std::chrono::steady_clock;

// The probe's sequences, each of tokens no other sequence holds (so nothing
// comes from or stays in the prefix cache), released with their blocks
// dropped however calibrate() ends.
class Probe {
 public:
  Probe(Engine& e, LatencyModel* m) : e_(e), m_(m), kind_(serving_output_kind(e.config())) {}
  ~Probe() {
    for (auto it = seqs_.rbegin(); it != seqs_.rend(); ++it) e_.release(*it, /*drop=*/true);
  }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // A new sequence of n pending tokens.
  Expected<int64_t> add(int32_t n) {
    const int64_t seq = fresh_id();
    std::vector<int32_t> tokens(n);
    for (int32_t& t : tokens) t = next_token();
    auto added = e_.add_sequence(seq, tokens, /*reuse_prefix=*/false);
    if (!added) return added.error();
    seqs_.push_back(seq);
    return seq;
  }

  Expected<int64_t> fork(int64_t parent) {
    const int64_t seq = fresh_id();
    FLASHTTS_TRY(e_.fork(parent, seq));
    seqs_.push_back(seq);
    return seq;
  }

  void append_one(int64_t seq) {
    const int32_t t = next_token();
    e_.append(seq, std::span<const int32_t>(&t, 1));
  }

  void release(int64_t seq) {
    e_.release(seq, /*drop=*/true);
    seqs_.erase(std::find(seqs_.begin(), seqs_.end(), seq));
  }

  // One pass over the pending tokens of `seqs`, timed and added to the model.
  // The first pass is not: it pays one-time costs (threads starting, memory
  // touched for the first time, kernels loading).
  Status pass(std::span<const int64_t> seqs) {
    std::vector<RunItem> items(seqs.size());
    for (size_t i = 0; i < seqs.size(); ++i) items[i].seq = seqs[i], items[i].sample_id = (uint64_t)seqs[i];
    RunResult r;
    const auto t0 = Clock::now();
    FLASHTTS_TRY(e_.run(items, kind_, &r));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!r.starved.empty()) return make_error("calibrate: the KV pool ran out of blocks for the probe");
    if (warm_) m_->add(r.shape, s);
    warm_ = true;
    return Status::success();
  }

 private:
  int64_t fresh_id() {
    while (e_.has(next_id_)) --next_id_;
    return next_id_--;
  }
  int32_t next_token() { return (int32_t)(mix64(0xca11b8a7e0000000ull + counter_++) % (uint64_t)e_.config().vocab_size); }

  Engine& e_;
  LatencyModel* m_;
  OutputKind kind_;
  std::vector<int64_t> seqs_;
  int64_t next_id_ = -1;
  uint64_t counter_ = 0;
  bool warm_ = false;
};

}  // namespace

Status calibrate(Engine& e, LatencyModel* m, int32_t max_tokens) {
  assert(max_tokens >= 1);
  const ModelConfig& c = e.config();
  const int32_t bs = e.kv().block_size();
  const int32_t free = e.kv_stats().free_blocks;
  if (free < 1) return make_error("calibrate: the KV pool has no free block to measure passes in");
  const int32_t max_pos = c.max_position > 0 ? c.max_position : std::numeric_limits<int32_t>::max();
  Probe probe(e, m);

  // kSteps decode steps of 1, 4, ... rows forked from `parent`, which holds
  // `ctx` tokens (so that 16 rows cost one context prefill), or of fresh
  // one-token sequences when ctx is 0; as many rows as `spare` blocks hold.
  constexpr int32_t kSteps = 3;
  const auto decodes = [&](int64_t parent, int32_t ctx, std::initializer_list<int32_t> wants,
                           int32_t spare) -> Status {
    const int32_t row_blocks = (ctx % bs + kSteps + bs - 1) / bs;  // a fork copies a partial last block
    int32_t last = 0;
    for (int32_t want : wants) {
      const int32_t rows = std::min(want, spare / row_blocks);
      if (rows <= last) continue;
      last = rows;
      std::vector<int64_t> seqs;
      for (int32_t r = 0; r < rows; ++r) {
        auto s = ctx > 0 ? probe.fork(parent) : probe.add(1);
        if (!s) return s.error();
        seqs.push_back(*s);
      }
      for (int32_t step = 0; step < kSteps; ++step) {
        for (int64_t s : seqs)
          if (e.n_pending(s) == 0) probe.append_one(s);
        FLASHTTS_TRY(probe.pass(seqs));
      }
      for (int64_t s : seqs) probe.release(s);
    }
    return Status::success();
  };

  // Decodes after a short context of whole blocks, as many as fit.
  int32_t ctx = std::min(64, max_pos - kSteps) / bs * bs;
  while (ctx > 0 && ctx / bs + (kSteps + bs - 1) / bs > free) ctx -= bs;
  if (ctx == 0) {
    FLASHTTS_TRY(decodes(0, 0, {1, 4, 16}, free));
  } else {
    auto parent = probe.add(ctx);
    if (!parent) return parent.error();
    FLASHTTS_TRY(probe.pass(std::span<const int64_t>(&*parent, 1)));
    FLASHTTS_TRY(decodes(*parent, ctx, {1, 4, 16}, free - ctx / bs));
    probe.release(*parent);
  }

  // Prefills of max_tokens (or what the pool holds), then halves down to 64
  // tokens but at least four lengths, twice each; a prefill longer than the
  // model's positions is split over sequences. The longest one's context is
  // then read by decode rows too: passes whose bytes are mostly KV.
  const auto split = [&](int32_t t) { return (t + max_pos - 1) / max_pos; };
  const auto blocks = [&](int32_t t) { return split(t) * (((t + split(t) - 1) / split(t) + bs - 1) / bs); };
  int32_t longest = std::min(max_tokens, free * bs);
  while (longest > 1 && blocks(longest) > free) --longest;
  for (int32_t t = longest, k = 0; t >= 1 && (k < 4 || t >= 64); t /= 2, ++k) {
    if (blocks(t) > free) continue;
    for (int rep = 0; rep < 2; ++rep) {
      std::vector<int64_t> seqs;
      for (int32_t r = 0, n = split(t); r < n; ++r) {
        auto s = probe.add(t / n + (r < t % n ? 1 : 0));
        if (!s) return s.error();
        seqs.push_back(*s);
      }
      FLASHTTS_TRY(probe.pass(seqs));
      if (rep == 0 && t == longest && t > ctx && seqs.size() == 1 && t + kSteps <= max_pos)
        FLASHTTS_TRY(decodes(seqs[0], t, {4, 16}, free - blocks(t)));
      for (int64_t s : seqs) probe.release(s);
    }
  }
  return Status::success();
}

}  // namespace flashtts
