#include "actors/row_cost.h"

#include <algorithm>
#include <cassert>
#include <map>

namespace flashtts {

RowCost::RowCost(size_t window) : window_(window) { assert(window >= 2); }

void RowCost::add(int32_t rows, double ms) {
  passes_.push_back({rows, ms});
  if (passes_.size() > window_) passes_.pop_front();
  fit();
}

void RowCost::fit() {
  // The fastest pass at each row count, then centred sums: the slope is
  // cov(rows, ms) / var(rows), well conditioned for the small integer row
  // counts and millisecond times seen here.
  std::map<int32_t, double> fastest;
  for (const Pass& p : passes_) {
    auto [it, fresh] = fastest.try_emplace(p.rows, p.ms);
    if (!fresh) it->second = std::min(it->second, p.ms);
  }
  known_ = fastest.size() >= 2;
  if (!known_) return;
  const double n = (double)fastest.size();
  double mean_x = 0, mean_y = 0;
  for (const auto& [rows, ms] : fastest) {
    mean_x += rows;
    mean_y += ms;
  }
  mean_x /= n;
  mean_y /= n;
  double sxx = 0, sxy = 0;
  for (const auto& [rows, ms] : fastest) {
    const double dx = rows - mean_x;
    sxx += dx * dx;
    sxy += dx * (ms - mean_y);
  }
  b_ = sxy / sxx;
  a_ = mean_y - b_ * mean_x;
}

}  // namespace flashtts
