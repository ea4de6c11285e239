#include "runtime/eval_report.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <iterator>
#include <set>
#include <utility>
#include <vector>

namespace flashtts::eval {

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string pct(double v) { return fmt("%.1f%%", 100 * v); }

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

// A y axis for values in [0, v]: the smallest step of 1, 2 or 5 times a
// power of ten that reaches v in at most `max_ticks` steps, and the axis ends
// at the first step at or above v, so the data fill most of the panel
// (always five steps of the next round size would put 2564 ms under a
// 5000 ms top, the upper half empty).
struct Axis {
  double hi;  // the top of the axis
  int ticks;  // steps from 0 to hi
};

Axis nice_axis(double v, int max_ticks) {
  if (!(v > 0)) return {1, max_ticks};
  double p = std::pow(10.0, std::floor(std::log10(v / max_ticks)));
  for (;; p *= 10)
    for (double m : {1.0, 2.0, 5.0}) {
      double step = m * p;
      int ticks = std::max(1, int(std::ceil(v / step - 1e-9)));
      if (ticks <= max_ticks) return {step * ticks, ticks};
    }
}

// One panel's frame: where the data goes in the picture.
struct Panel {
  double left, top, width, height;  // plot area in px
  double x_lo, x_hi;                // log2(N) domain
  double y_hi;                      // y domain [0, y_hi]
  int y_ticks;                      // labelled steps from 0 to y_hi
  double x(double n) const { return left + (std::log2(n) - x_lo) / (x_hi - x_lo) * width; }
  double y(double v) const { return top + height - v / y_hi * height; }
};

struct Series {
  const char* method;
  const char* label;
  const char* color;
  bool dashed;
};

constexpr Series kSeries[] = {
    {"naive", "naive (best score)", "#1f77b4", false},
    {"weighted", "weighted vote", "#ff7f0e", false},
    {"majority", "majority vote", "#2ca02c", false},
    {"pass", "pass@N", "#7f7f7f", true},
    {"latency", "mean latency", "#d62728", false},
};

double value(const Summary& s, const char* method) {
  std::string m = method;
  for (int k = 0; k < kNumMethods; ++k)
    if (m == kMethods[k]) return s.accuracy[k];
  if (m == "pass") return s.pass_at_n;
  return s.mean_latency_ms;
}

std::string axes(const Panel& p, std::span<const Summary> rows, const std::string& y_label, bool percent) {
  std::string o;
  double bottom = p.top + p.height;
  o += "<g class=\"axes\" stroke=\"#000\" stroke-width=\"1\">\n";
  o += "<line x1=\"" + fmt("%.1f", p.left) + "\" y1=\"" + fmt("%.1f", bottom) + "\" x2=\"" +
       fmt("%.1f", p.left + p.width) + "\" y2=\"" + fmt("%.1f", bottom) + "\"/>\n";
  o += "<line x1=\"" + fmt("%.1f", p.left) + "\" y1=\"" + fmt("%.1f", p.top) + "\" x2=\"" + fmt("%.1f", p.left) +
       "\" y2=\"" + fmt("%.1f", bottom) + "\"/>\n";
  o += "</g>\n";
  // x ticks: the powers of two in the domain and every N that is not one.
  std::set<double> xt;
  for (int e = std::max(0, int(std::ceil(p.x_lo))); e <= int(std::floor(p.x_hi)); ++e) xt.insert(std::ldexp(1.0, e));
  for (const Summary& s : rows) xt.insert(double(s.n));
  o += "<g class=\"xticks\" font-size=\"11\" text-anchor=\"middle\">\n";
  for (double n : xt) {
    double x = p.x(n);
    o += "<line x1=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", bottom) + "\" x2=\"" + fmt("%.1f", x) + "\" y2=\"" +
         fmt("%.1f", bottom + 5) + "\" stroke=\"#000\"/>\n";
    o += "<text x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", bottom + 18) + "\">" + fmt("%.0f", n) + "</text>\n";
  }
  o += "</g>\n";
  const int ny = p.y_ticks;
  o += "<g class=\"yticks\" font-size=\"11\" text-anchor=\"end\">\n";
  for (int i = 0; i <= ny; ++i) {
    double v = p.y_hi * i / ny, y = p.y(v);
    o += "<line x1=\"" + fmt("%.1f", p.left - 5) + "\" y1=\"" + fmt("%.1f", y) + "\" x2=\"" +
         fmt("%.1f", p.left + p.width) + "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"" + (i ? "#e0e0e0" : "#000") +
         "\"/>\n";
    std::string label = percent ? fmt("%.0f", 100 * v) : (p.y_hi >= 10 ? fmt("%.0f", v) : fmt("%.2g", v));
    o += "<text x=\"" + fmt("%.1f", p.left - 8) + "\" y=\"" + fmt("%.1f", y + 4) + "\">" + label + "</text>\n";
  }
  o += "</g>\n";
  o += "<text x=\"" + fmt("%.1f", p.left + p.width / 2) + "\" y=\"" + fmt("%.1f", bottom + 36) +
       "\" font-size=\"12\" text-anchor=\"middle\">N (log2 scale)</text>\n";
  double cy = p.top + p.height / 2, cx = p.left - 44;
  o += "<text x=\"" + fmt("%.1f", cx) + "\" y=\"" + fmt("%.1f", cy) + "\" font-size=\"12\" text-anchor=\"middle\" " +
       "transform=\"rotate(-90 " + fmt("%.1f", cx) + " " + fmt("%.1f", cy) + ")\">" + xml_escape(y_label) + "</text>\n";
  return o;
}

// One polyline with a dot per point; `attr` names what it shows.
std::string polyline(const std::vector<std::pair<double, double>>& xy, const std::string& attr, const char* color,
                     bool dashed, bool dots_too = true) {
  std::string pts, dots;
  for (auto [x, y] : xy) {
    if (!pts.empty()) pts += ' ';
    pts += fmt("%.1f", x) + "," + fmt("%.1f", y);
    dots += "<circle cx=\"" + fmt("%.1f", x) + "\" cy=\"" + fmt("%.1f", y) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
  }
  return "<polyline " + attr + " fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"" +
         (dashed ? " stroke-dasharray=\"6 4\"" : "") + " points=\"" + pts + "\"/>\n" + (dots_too ? dots : "");
}

std::string series(const Panel& p, std::span<const Summary> rows, const Series& s) {
  std::vector<std::pair<double, double>> xy;
  for (const Summary& r : rows) xy.emplace_back(p.x(r.n), p.y(value(r, s.method)));
  return polyline(xy, std::string("data-method=\"") + s.method + "\"", s.color, s.dashed);
}

// The labels of the runs, in first-seen order.
std::vector<std::string> labels_of(std::span<const Summary> rows) {
  std::vector<std::string> out;
  for (const Summary& r : rows)
    if (std::find(out.begin(), out.end(), r.label) == out.end()) out.push_back(r.label);
  return out;
}

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

}  // namespace

std::string outcome_json(const Outcome& o) {
  nlohmann::ordered_json j;
  if (!o.label.empty()) j["strategy"] = o.label;
  j["index"] = o.index;
  if (!o.id.empty()) j["id"] = o.id;
  j["n"] = o.n;
  j["gold"] = o.gold;
  j["failed"] = o.failed;
  if (o.failed) j["error"] = o.error;
  for (int m = 0; m < kNumMethods; ++m) j[kMethods[m]] = o.failed ? nlohmann::ordered_json() : nlohmann::ordered_json(o.sel.predicted[m]);
  for (int m = 0; m < kNumMethods; ++m) j[std::string(kMethods[m]) + "_correct"] = o.sel.correct[m];
  j["pass"] = o.sel.pass;
  if (!o.failed) {
    j["completions"] = o.completions;
    j["server_answer"] = o.server_answer;
    j["latency_ms"] = o.latency_ms;
    j["policy_tokens"] = o.policy_tokens;
    j["prm_tokens"] = o.prm_tokens;
    j["prm_tokens_computed"] = o.prm_tokens_computed;
    j["goodput_tokens_per_s"] = o.goodput_tokens_per_s;
  }
  // Answers of a noisy model may hold invalid UTF-8: replace, never throw.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string summary_text(const Summary& s) {
  std::string o = "n=" + std::to_string(s.n) + ": " + std::to_string(s.problems) + " problems";
  if (s.failed) o += ", " + std::to_string(s.failed) + " failed";
  o += "\n  accuracy  naive " + pct(s.accuracy[0]) + "  weighted " + pct(s.accuracy[1]) + "  majority " +
       pct(s.accuracy[2]) + "  pass@" + std::to_string(s.n) + " " + pct(s.pass_at_n) + "\n";
  o += "  latency " + fmt("%.1f", s.mean_latency_ms) + " ms  policy tokens/problem " +
       fmt("%.1f", s.policy_tokens_per_problem) + "  PRM tokens/problem " + fmt("%.1f", s.prm_tokens_per_problem) +
       "  goodput " + fmt("%.1f", s.mean_goodput_tokens_per_s) + " tok/s\n";
  return o;
}

std::string markdown_table(std::span<const Summary> rows) {
  // A strategy column only when the runs are labelled (several strategies).
  bool labelled = std::any_of(rows.begin(), rows.end(), [](const Summary& s) { return !s.label.empty(); });
  std::string o = std::string(labelled ? "| strategy " : "") +
                  "| N | naive | weighted | majority | pass@N | failed | latency (ms) | policy tokens | PRM tokens | "
                  "goodput (tok/s) |\n" +
                  (labelled ? "|:--" : "") + "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const Summary& s : rows)
    o += (labelled ? "| " + s.label + " " : "") + "| " + std::to_string(s.n) + " | " + pct(s.accuracy[0]) + " | " +
         pct(s.accuracy[1]) + " | " + pct(s.accuracy[2]) + " | " + pct(s.pass_at_n) + " | " +
         std::to_string(s.failed) + "/" + std::to_string(s.problems) + " | " + fmt("%.1f", s.mean_latency_ms) + " | " +
         fmt("%.1f", s.policy_tokens_per_problem) + " | " + fmt("%.1f", s.prm_tokens_per_problem) + " | " +
         fmt("%.1f", s.mean_goodput_tokens_per_s) + " |\n";
  return o;
}

std::string svg_plot(std::span<const Summary> rows, const std::string& title) {
  assert(!rows.empty());
  const double W = 960, H = 430;
  double lo = 1e9, hi = -1e9, lat = 0;
  for (const Summary& s : rows) {
    assert(s.n >= 1);
    lo = std::min(lo, std::log2(double(s.n)));
    hi = std::max(hi, std::log2(double(s.n)));
    lat = std::max(lat, s.mean_latency_ms);
  }
  // A margin so the end points sit off the frame; one N gets a span of two.
  double pad = hi > lo ? 0.25 : 1.0;
  Panel acc{80, 50, 370, 290, lo - pad, hi + pad, 1.0, 5};
  // 5% headroom keeps the highest point off the frame.
  Axis lat_axis = nice_axis(lat * 1.05, 6);
  Panel lp{570, 50, 370, 290, lo - pad, hi + pad, lat_axis.hi, lat_axis.ticks};
  std::vector<std::string> labels = labels_of(rows);
  const bool compare = labels.size() > 1;

  // Compare mode: a line per strategy (its weighted-vote accuracy and its
  // latency); a "greedy" run is one point, drawn as a dashed level.
  struct Entry {
    std::string label;
    const char* color;
    bool dashed;
  };
  std::vector<Entry> legend;
  std::string acc_lines, lat_lines;
  if (compare) {
    size_t c = 0;
    for (const std::string& label : labels) {
      std::vector<const Summary*> mine;
      for (const Summary& r : rows)
        if (r.label == label) mine.push_back(&r);
      bool level = label == "greedy" && mine.size() == 1;
      const char* color = level ? "#000000" : kPalette[c++ % std::size(kPalette)];
      std::string attr = "data-strategy=\"" + xml_escape(label) + "\"";
      std::vector<std::pair<double, double>> a, l;
      if (level) {
        a = {{acc.left, acc.y(mine[0]->accuracy[1])}, {acc.left + acc.width, acc.y(mine[0]->accuracy[1])}};
        l = {{lp.left, lp.y(mine[0]->mean_latency_ms)}, {lp.left + lp.width, lp.y(mine[0]->mean_latency_ms)}};
      } else {
        for (const Summary* r : mine) {
          a.emplace_back(acc.x(r->n), acc.y(r->accuracy[1]));
          l.emplace_back(lp.x(r->n), lp.y(r->mean_latency_ms));
        }
      }
      acc_lines += polyline(a, attr, color, level, !level);
      lat_lines += polyline(l, attr, color, level, !level);
      legend.push_back({label.empty() ? "default" : label, color, level});
    }
  } else {
    for (int k = 0; k < 4; ++k) acc_lines += series(acc, rows, kSeries[k]);
    lat_lines += series(lp, rows, kSeries[4]);
    for (const Series& s : kSeries) legend.push_back({s.label, s.color, s.dashed});
  }

  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) +
       "\" viewBox=\"0 0 " + fmt("%.0f", W) + " " + fmt("%.0f", H) + "\" font-family=\"sans-serif\">\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) + "\" fill=\"#fff\"/>\n";
  o += "<text x=\"" + fmt("%.0f", W / 2) + "\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">" + xml_escape(title) +
       "</text>\n";
  o += "<g class=\"panel\" id=\"accuracy\">\n" +
       axes(acc, rows, compare ? "accuracy, weighted vote (%)" : "accuracy (%)", true) + acc_lines + "</g>\n";
  o += "<g class=\"panel\" id=\"latency\">\n" + axes(lp, rows, "mean latency (ms)", false) + lat_lines + "</g>\n";
  // The legend: one row under both panels.
  o += "<g class=\"legend\" font-size=\"12\">\n";
  double x = 80, y = H - 22;
  for (const Entry& e : legend) {
    o += "<line x1=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", y) + "\" x2=\"" + fmt("%.1f", x + 24) + "\" y2=\"" +
         fmt("%.1f", y) + "\" stroke=\"" + e.color + "\" stroke-width=\"2\"" +
         (e.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    o += "<text x=\"" + fmt("%.1f", x + 30) + "\" y=\"" + fmt("%.1f", y + 4) + "\">" + xml_escape(e.label) + "</text>\n";
    x += 50 + 7.0 * double(e.label.size());
  }
  o += "</g>\n</svg>\n";
  return o;
}

}  // namespace flashtts::eval
