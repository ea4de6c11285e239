#include "gpu/sampler.h"

#include "gpu/sample_hash.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

namespace flashtts {

double sample_uniform(uint64_t seed, uint64_t seq_id, uint64_t position) { return uniform_of(seed, seq_id, position); }

int32_t argmax(std::span<const float> v) {
  assert(!v.empty());
  return (int32_t)(std::max_element(v.begin(), v.end()) - v.begin());
}

namespace {

// A candidate token: its place in the total order (higher logit first, lower
// id on ties) as one integer, and its unnormalized probability.
struct Candidate {
  uint64_t key;
  double weight;
};

uint64_t order_key(float logit, int32_t id) {
  if (logit == 0.0f) logit = 0.0f;  // -0 ties with +0, as in a float comparison
  uint32_t bits;
  std::memcpy(&bits, &logit, sizeof bits);
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);  // ascending with the float
  return (uint64_t)~bits << 32 | (uint32_t)id;                  // ascending key: descending logit
}

// The candidate at which the mass of c[lo, hi), taken in key order, first
// exceeds `target` (reaches it, when `reach`). Rearranges c[lo, hi). A
// quickselect that walks toward the crossing, keeping count of the mass it
// leaves behind: expected linear time, where sorting the whole vocabulary for
// every token was most of a decode step's sampling time.
// REQUIRES: lo < hi; keys distinct.
size_t crossing(std::vector<Candidate>& c, size_t lo, size_t hi, double target, bool reach) {
  auto before = [reach](double mass, double t) { return reach ? mass >= t : mass > t; };
  size_t last = hi - 1;  // where rounding leaves us when the target is the whole mass
  while (hi - lo > 1) {
    uint64_t a = c[lo].key, b = c[lo + (hi - lo) / 2].key, d = c[hi - 1].key;
    uint64_t pivot = std::max(std::min(a, b), std::min(std::max(a, b), d));
    auto first = c.begin() + lo, end = c.begin() + hi;
    auto mid = std::partition(first, end, [pivot](const Candidate& x) { return x.key < pivot; });
    auto at = std::partition(mid, end, [pivot](const Candidate& x) { return x.key == pivot; });
    assert(at - mid == 1);
    size_t p = mid - c.begin();
    double front = 0.0;
    for (auto it = first; it != mid; ++it) front += it->weight;
    if (before(front, target)) {
      hi = p;
      continue;
    }
    target -= front;
    if (before(c[p].weight, target)) return p;
    target -= c[p].weight;
    last = p;
    lo = p + 1;
  }
  return lo < hi ? lo : last;
}

}  // namespace

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seq_id, uint64_t position) {
  assert(!logits.empty());
  if (p.temperature <= 0.0f) return argmax(logits);

  const size_t n = logits.size();
  thread_local std::vector<Candidate> c;
  c.resize(n);
  for (size_t i = 0; i < n; ++i) c[i].key = order_key(logits[i], (int32_t)i);
  size_t keep = n;
  if (p.top_k > 0 && (size_t)p.top_k < n) {
    keep = (size_t)p.top_k;
    std::nth_element(c.begin(), c.begin() + keep - 1, c.end(),
                     [](const Candidate& a, const Candidate& b) { return a.key < b.key; });
  }
  auto id_of = [&](size_t i) { return (int32_t)(uint32_t)c[i].key; };

  // Softmax of logit / T over the kept candidates, in double.
  float top = logits[id_of(0)];
  for (size_t i = 1; i < keep; ++i) top = std::max(top, logits[id_of(i)]);
  const double inv_t = 1.0 / p.temperature;
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) sum += c[i].weight = std::exp(((double)logits[id_of(i)] - top) * inv_t);

  // Nucleus: the smallest prefix whose mass reaches top_p (always at least one).
  uint64_t cut_key = UINT64_MAX;
  if (p.top_p < 1.0f) {
    cut_key = c[crossing(c, 0, keep, (double)p.top_p * sum, true)].key;
    sum = 0.0;
    for (size_t i = 0; i < keep; ++i)
      if (c[i].key <= cut_key) sum += c[i].weight;
  }

  const double u = sample_uniform(p.seed, seq_id, position) * sum;
  size_t pick = crossing(c, 0, keep, u, false);
  if (c[pick].key > cut_key) return (int32_t)(uint32_t)cut_key;  // rounding at the nucleus' edge
  return id_of(pick);
}

}  // namespace flashtts
