// The Prometheus text exposition format (version 0.0.4), what `GET /metrics`
// of the HTTP gateway answers: families of samples, each introduced by its
// `# HELP` and `# TYPE` lines, label values escaped, and histograms with
// cumulative `_bucket{le=...}` samples, `_sum` and `_count`.
//
// Thread contract: PromText is a plain value used by one thread; Histogram
// is too (the gateway's metrics guard theirs with their own mutex).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace flashtts::prom {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { kCounter, kGauge, kHistogram };

// A label value as the format wants it: backslash, double quote and newline
// escaped.
std::string escape_label(const std::string& v);
// A sample value: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string format_value(double v);

class PromText {
 public:
  // Starts the family `name` (its HELP and TYPE lines) unless it was
  // started already. REQUIRES: `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*.
  PromText& family(const std::string& name, Type type, const std::string& help);
  // One sample line `name{labels} value`; `name` may carry a histogram's
  // suffix (_bucket, _sum, _count) after its family's name.
  PromText& sample(const std::string& name, const Labels& labels, double value);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
  std::set<std::string> families_;
};

// A histogram with fixed upper bounds (seconds for latencies).
class Histogram {
 public:
  // REQUIRES: `bounds` ascending and finite; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  // Bounds for request latencies: 5 ms to 5 minutes.
  static std::vector<double> latency_bounds();

  void observe(double v);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // Writes `name_bucket`, `name_sum`, `name_count` with `labels` (the family
  // must have been started as a histogram).
  void write(PromText& out, const std::string& name, const Labels& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; last = +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace flashtts::prom
