#include "gpu/sampler.h"

#include "gpu/sample_hash.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <vector>

namespace flashtts {

double sample_uniform(uint64_t seed, uint64_t seq_id, uint64_t position) { return uniform_of(seed, seq_id, position); }

int32_t argmax(std::span<const float> v) {
  assert(!v.empty());
  return (int32_t)(std::max_element(v.begin(), v.end()) - v.begin());
}

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seq_id, uint64_t position) {
  assert(!logits.empty());
  if (p.temperature <= 0.0f) return argmax(logits);

  // Candidates sorted by logit, descending; ties by id so the order is total.
  const int32_t n = (int32_t)logits.size();
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int32_t keep = n;
  if (p.top_k > 0 && p.top_k < n) {
    keep = p.top_k;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), by_logit);
  } else {
    std::sort(idx.begin(), idx.end(), by_logit);
  }

  // Softmax of logit / T over the kept candidates, in double.
  std::vector<double> prob(keep);
  const double inv_t = 1.0 / p.temperature, top = logits[idx[0]];
  double sum = 0.0;
  for (int32_t i = 0; i < keep; ++i) sum += prob[i] = std::exp(((double)logits[idx[i]] - top) * inv_t);

  // Nucleus: the smallest prefix whose mass reaches top_p (always at least one).
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    int32_t cut = keep;
    for (int32_t i = 0; i < keep; ++i) {
      cum += prob[i] / sum;
      if (cum >= p.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = std::accumulate(prob.begin(), prob.begin() + keep, 0.0);
  }

  const double u = sample_uniform(p.seed, seq_id, position) * sum;
  double cum = 0.0;
  for (int32_t i = 0; i < keep; ++i) {
    cum += prob[i];
    if (u < cum) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace flashtts
