#include "runtime/prometheus.h"

#include <cassert>
#include <charconv>
#include <cmath>

namespace flashtts::prom {

namespace {

const char* type_name(Type t) {
  switch (t) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

[[maybe_unused]] bool valid_name(const std::string& n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// HELP text escapes only backslash and newline.
std::string escape_help(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

}  // namespace

std::string escape_label(const std::string& v) {
  std::string o;
  o.reserve(v.size());
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char b[64];
  // Exact integers (counts, bytes) print as integers up to 2^53.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    auto r = std::to_chars(b, b + sizeof b, static_cast<int64_t>(v));
    return std::string(b, r.ptr);
  }
  auto r = std::to_chars(b, b + sizeof b, v);  // shortest round-trip form
  return std::string(b, r.ptr);
}

PromText& PromText::family(const std::string& name, Type type, const std::string& help) {
  assert(valid_name(name));
  if (!families_.insert(name).second) return *this;
  out_ += "# HELP " + name + " " + escape_help(help) + "\n";
  out_ += "# TYPE " + name + " " + type_name(type) + "\n";
  return *this;
}

PromText& PromText::sample(const std::string& name, const Labels& labels, double value) {
  assert(valid_name(name));
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"" + escape_label(labels[i].second) + '"';
    }
    out_ += '}';
  }
  out_ += ' ' + format_value(value) + '\n';
  return *this;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  for (size_t i = 1; i < bounds_.size(); ++i) assert(bounds_[i - 1] < bounds_[i]);
}

std::vector<double> Histogram::latency_bounds() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // `le` is inclusive
  ++counts_[i];
  ++count_;
  sum_ += v;
}

void Histogram::write(PromText& out, const std::string& name, const Labels& labels) const {
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    Labels l = labels;
    l.emplace_back("le", i < bounds_.size() ? format_value(bounds_[i]) : "+Inf");
    out.sample(name + "_bucket", l, double(cum));
  }
  out.sample(name + "_sum", labels, sum_);
  out.sample(name + "_count", labels, double(count_));
}

}  // namespace flashtts::prom
