#include "actors/row_cost.h"

#include <cassert>

namespace flashtts {

RowCost::RowCost(size_t window) : window_(window) { assert(window >= 2); }

void RowCost::add(int32_t rows, double ms) {
  passes_.push_back({rows, ms});
  if (passes_.size() > window_) passes_.pop_front();
  fit();
}

void RowCost::fit() {
  // Centred sums: the slope is cov(rows, ms) / var(rows), well conditioned
  // for the small integer row counts and millisecond times seen here.
  const double n = (double)passes_.size();
  double mean_x = 0, mean_y = 0;
  for (const Pass& p : passes_) {
    mean_x += p.rows;
    mean_y += p.ms;
  }
  mean_x /= n;
  mean_y /= n;
  double sxx = 0, sxy = 0;
  for (const Pass& p : passes_) {
    const double dx = p.rows - mean_x;
    sxx += dx * dx;
    sxy += dx * (p.ms - mean_y);
  }
  // sxx > 0 exactly when two row counts differ.
  known_ = sxx > 0;
  if (!known_) return;
  b_ = sxy / sxx;
  a_ = mean_y - b_ * mean_x;
}

}  // namespace flashtts
