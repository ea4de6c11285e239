// The Prometheus text format writer (runtime/prometheus.h): family headers
// written once, label values escaped, values formatted as the format reads
// them, and histogram buckets cumulative with +Inf, _sum and _count.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/prometheus.h"

namespace flashtts::prom {
namespace {

TEST(Prometheus, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_label("/v1/solve"), "/v1/solve");
}

TEST(Prometheus, ValuesAreIntegersWhenWholeAndShortestOtherwise) {
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(INFINITY), "+Inf");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_value(NAN), "NaN");
}

TEST(Prometheus, AFamilyHeaderIsWrittenOnceBeforeItsSamples) {
  PromText t;
  t.family("x_total", Type::kCounter, "Things.\nCounted.");
  t.sample("x_total", {{"a", "1"}, {"b", "q\""}}, 3);
  t.family("x_total", Type::kCounter, "Things again.");
  t.sample("x_total", {}, 4);
  EXPECT_EQ(t.text(),
            "# HELP x_total Things.\\nCounted.\n"
            "# TYPE x_total counter\n"
            "x_total{a=\"1\",b=\"q\\\"\"} 3\n"
            "x_total 4\n");
}

TEST(Prometheus, HistogramBucketsAreCumulativeAndEndWithInf) {
  Histogram h({0.1, 1});
  h.observe(0.1);  // `le` is inclusive
  h.observe(0.5);
  h.observe(7);
  EXPECT_EQ(h.count(), 3u);
  PromText t;
  t.family("lat_seconds", Type::kHistogram, "Latency.");
  h.write(t, "lat_seconds", {{"route", "/r"}});
  EXPECT_EQ(t.text(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{route=\"/r\",le=\"0.1\"} 1\n"
            "lat_seconds_bucket{route=\"/r\",le=\"1\"} 2\n"
            "lat_seconds_bucket{route=\"/r\",le=\"+Inf\"} 3\n"
            "lat_seconds_sum{route=\"/r\"} 7.6\n"
            "lat_seconds_count{route=\"/r\"} 3\n");
}

}  // namespace
}  // namespace flashtts::prom
