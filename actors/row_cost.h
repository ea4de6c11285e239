// The cost of a decode pass as a function of its rows: t = a + b·rows, fitted
// by least squares over the last `window` passes the generator measured,
// through the fastest pass at each row count: a loaded host only ever adds
// time to a pass, and a few slow passes at small row counts (other processes
// taking the cores) would otherwise tilt the slope below zero. The generator
// asks it how much speculative rows would slow the real ones
// (GeneratorOptions::speculation_max_slowdown).
//
// Until the window holds at least two distinct row counts the slope cannot be
// told from the fixed cost, and the model is unknown.
//
// Thread contract: owned by the generator actor and used from its thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace flashtts {

class RowCost {
 public:
  // REQUIRES: window >= 2.
  explicit RowCost(size_t window = 64);

  // One pass of `rows` rows that took `ms` milliseconds; the oldest pass
  // leaves the window when it is full.
  void add(int32_t rows, double ms);

  bool known() const { return known_; }
  double a() const { return a_; }  // ms of a pass, whatever its rows (valid when known)
  double b() const { return b_; }  // ms each row adds (valid when known)
  // a + b·rows. REQUIRES: known().
  double predict(double rows) const { return a_ + b_ * rows; }
  size_t size() const { return passes_.size(); }

 private:
  void fit();

  struct Pass {
    int32_t rows;
    double ms;
  };
  size_t window_;
  std::deque<Pass> passes_;  // oldest first
  bool known_ = false;
  double a_ = 0, b_ = 0;
};

}  // namespace flashtts
