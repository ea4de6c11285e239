#include "runtime/tts_figures.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace flashtts::tts {

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

template <class T>
void get_if_there(const msg::MapReader& m, const char* key, T* out) {
  if (m.has(key) && !m.is_nil(key)) (void)m.get(key, out);
}

}  // namespace

Expected<Counters> read_counters(const msg::MapReader& m) {
  Counters c;
  get_if_there(m, "busy_ms", &c.busy_ms);
  get_if_there(m, "iterations", &c.iterations);
  get_if_there(m, "decode_iterations", &c.decode_iterations);
  get_if_there(m, "decode_rows", &c.decode_rows);
  get_if_there(m, "prefill_tokens", &c.prefill_tokens);
  get_if_there(m, "preemptions", &c.preemptions);
  get_if_there(m, "evictions", &c.evictions);
  get_if_there(m, "tokens_computed", &c.tokens_computed);
  get_if_there(m, "recomputed_tokens", &c.recomputed_tokens);
  get_if_there(m, "kv_blocks_peak", &c.kv_blocks_peak);
  get_if_there(m, "kv_blocks_needed_peak", &c.kv_blocks_needed_peak);
  get_if_there(m, "kv_blocks_used", &c.kv_blocks_used);
  get_if_there(m, "kv_blocks_total", &c.kv_blocks_total);
  get_if_there(m, "kv_resizes", &c.kv_resizes);
  get_if_there(m, "weight_uploads", &c.weight_uploads);
  get_if_there(m, "weight_upload_ms", &c.weight_upload_ms);
  std::vector<int32_t> hist;
  if (m.has("rows_hist")) FLASHTTS_TRY(m.get("rows_hist", &hist));
  c.rows_hist.assign(hist.begin(), hist.end());
  return c;
}

Counters delta(const Counters& a, const Counters& b) {
  Counters d;
  d.busy_ms = a.busy_ms - b.busy_ms;
  d.iterations = a.iterations - b.iterations;
  d.decode_iterations = a.decode_iterations - b.decode_iterations;
  d.decode_rows = a.decode_rows - b.decode_rows;
  d.prefill_tokens = a.prefill_tokens - b.prefill_tokens;
  d.preemptions = a.preemptions - b.preemptions;
  d.evictions = a.evictions - b.evictions;
  d.tokens_computed = a.tokens_computed - b.tokens_computed;
  d.recomputed_tokens = a.recomputed_tokens - b.recomputed_tokens;
  d.kv_blocks_peak = a.kv_blocks_peak;
  d.kv_blocks_needed_peak = a.kv_blocks_needed_peak;
  d.kv_blocks_used = a.kv_blocks_used;
  d.kv_blocks_total = a.kv_blocks_total;
  d.kv_resizes = a.kv_resizes - b.kv_resizes;
  d.weight_uploads = a.weight_uploads - b.weight_uploads;
  d.weight_upload_ms = a.weight_upload_ms - b.weight_upload_ms;
  d.rows_hist = a.rows_hist;
  for (size_t i = 0; i < b.rows_hist.size() && i < d.rows_hist.size(); ++i) d.rows_hist[i] -= b.rows_hist[i];
  return d;
}

double idle_share(std::span<const int64_t> hist, int64_t beams) {
  int64_t all = 0, short_ = 0;
  for (size_t rows = 1; rows < hist.size(); ++rows) {
    all += hist[rows];
    if ((int64_t)rows < beams) short_ += hist[rows];
  }
  return all ? double(short_) / double(all) : 0.0;
}

double idle_slots(std::span<const int64_t> hist, int64_t beams) {
  int64_t iterations = 0, empty = 0;
  for (size_t rows = 1; rows < hist.size(); ++rows) {
    iterations += hist[rows];
    empty += hist[rows] * std::max<int64_t>(0, beams - (int64_t)rows);
  }
  return iterations && beams > 0 ? double(empty) / (double(iterations) * double(beams)) : 0.0;
}

double mean_rows(const Counters& c) {
  return c.decode_iterations ? double(c.decode_rows) / double(c.decode_iterations) : 0.0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = p / 100.0 * double(v.size() - 1);
  size_t lo = (size_t)std::floor(pos), hi = (size_t)std::ceil(pos);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

RunSummary summarize(const RunFigures& r) {
  RunSummary s;
  std::vector<double> lat;
  double goodput = 0;
  int ok = 0, correct = 0, pass = 0;
  int64_t prompts = 0, chains = 0;
  double chain_sum = 0;
  for (const SolveFigures& f : r.solves) {
    if (f.failed) {
      ++s.failed;
      continue;
    }
    ++ok;
    lat.push_back(f.latency_ms);
    goodput += f.goodput;
    correct += f.correct;
    pass += f.pass;
    prompts += f.prompt_tokens;
    if (f.chain_tokens >= 0) chain_sum += (double)f.chain_tokens, ++chains;
    if (f.spec_generated >= 0) {
      s.spec_generated = std::max<int64_t>(s.spec_generated, 0) + f.spec_generated;
      s.spec_kept = std::max<int64_t>(s.spec_kept, 0) + f.spec_kept;
      s.spec_dropped = std::max<int64_t>(s.spec_dropped, 0) + f.spec_dropped;
      s.spec_pruned_early = std::max<int64_t>(s.spec_pruned_early, 0) + std::max<int64_t>(f.spec_pruned_early, 0);
      s.spec_pruned_early_tokens =
          std::max<int64_t>(s.spec_pruned_early_tokens, 0) + std::max<int64_t>(f.spec_pruned_early_tokens, 0);
    }
  }
  s.latency_p50_ms = percentile(lat, 50);
  s.latency_p90_ms = percentile(lat, 90);
  s.goodput = ok ? goodput / ok : 0;
  s.chain_tokens = chains ? chain_sum / (double)chains : -1;
  s.gen_busy_ms = r.gen.busy_ms;
  s.ver_busy_ms = r.ver.busy_ms;
  s.mean_rows = mean_rows(r.gen);
  s.idle_share = idle_share(r.gen.rows_hist, r.beams);
  s.idle_slots = idle_slots(r.gen.rows_hist, r.beams);
  s.gen_peak_blocks = r.gen.kv_blocks_peak;
  s.ver_peak_blocks = r.ver.kv_blocks_peak;
  s.evictions = r.gen.evictions + r.ver.evictions;
  s.recomputed_tokens = std::max<int64_t>(0, r.gen.prefill_tokens - prompts);
  s.gen_kv_recomputed = r.gen.recomputed_tokens, s.ver_kv_recomputed = r.ver.recomputed_tokens;
  s.preemptions = r.gen.preemptions + r.ver.preemptions;
  s.gen_pool_blocks = r.gen.kv_blocks_total, s.ver_pool_blocks = r.ver.kv_blocks_total;
  s.resizes = r.gen.kv_resizes + r.ver.kv_resizes;
  s.weight_uploads = r.gen.weight_uploads + r.ver.weight_uploads;
  s.weight_upload_s = (r.gen.weight_upload_ms + r.ver.weight_upload_ms) / 1e3;
  s.gen_passes = r.gen.iterations, s.gen_decode_passes = r.gen.decode_iterations;
  s.ver_tokens_computed = r.ver.tokens_computed;
  s.accuracy = ok ? double(correct) / ok : 0;
  s.pass_at_n = ok ? double(pass) / ok : 0;
  s.correct_per_min = r.wall_ms > 0 ? double(correct) / (r.wall_ms / 60000.0) : 0;
  return s;
}

Difference paired_difference(std::span<const double> a, std::span<const double> b) {
  Difference d;
  const size_t n = std::min(a.size(), b.size());
  if (n == 0) return d;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += a[i] - b[i];
  d.mean = sum / double(n);
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += (a[i] - b[i] - d.mean) * (a[i] - b[i] - d.mean);
  const double se = n > 1 ? std::sqrt(ss / double(n - 1) / double(n)) : 0.0;
  d.lo = d.mean - 1.96 * se, d.hi = d.mean + 1.96 * se;
  d.pairs = (int)n;
  return d;
}

Ratio paired_ratio(std::span<const double> a, std::span<const double> b) {
  std::vector<double> q;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (b[i] != 0) q.push_back(a[i] / b[i]);
  Ratio r;
  r.pairs = (int)q.size();
  if (q.empty()) return r;
  r.median = percentile(q, 50);
  r.min = *std::min_element(q.begin(), q.end());
  r.max = *std::max_element(q.begin(), q.end());
  return r;
}

std::string svg_plot(std::span<const Point> points, const std::string& title) {
  const double top = 50, h = 290, w = 370;
  const double lefts[2] = {80, 570};
  double lo = 1e9, hi = -1e9, ymax[2] = {0, 0};
  std::map<std::string, std::vector<const Point*>> by;  // variant -> points in N order
  std::vector<std::string> order;
  for (const Point& p : points) {
    lo = std::min(lo, std::log2(double(std::max(p.n, 1))));
    hi = std::max(hi, std::log2(double(std::max(p.n, 1))));
    ymax[0] = std::max(ymax[0], p.goodput);
    ymax[1] = std::max(ymax[1], p.latency_ms);
    if (!by.count(p.variant)) order.push_back(p.variant);
    by[p.variant].push_back(&p);
  }
  const double pad = hi > lo ? 0.25 : 1.0;
  lo -= pad, hi += pad;
  for (double& m : ymax) m = m > 0 ? m * 1.1 : 1;
  auto x = [&](int panel, int n) { return lefts[panel] + (std::log2(double(std::max(n, 1))) - lo) / (hi - lo) * w; };
  auto y = [&](int panel, double v) { return top + h - v / ymax[panel] * h; };
  const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  const char* titles[2] = {"goodput (tokens/s per beam)", "latency p50 (ms)"};

  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" "
                  "height=\"430\" viewBox=\"0 0 960 430\" font-family=\"sans-serif\">\n"
                  "<rect x=\"0\" y=\"0\" width=\"960\" height=\"430\" fill=\"#fff\"/>\n";
  std::string t;
  for (char c : title) t += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  o += "<text x=\"480\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">" + t + "</text>\n";
  for (int p = 0; p < 2; ++p) {
    o += "<g class=\"panel\">\n<rect x=\"" + fmt("%.0f", lefts[p]) + "\" y=\"" + fmt("%.0f", top) + "\" width=\"" +
         fmt("%.0f", w) + "\" height=\"" + fmt("%.0f", h) + "\" fill=\"none\" stroke=\"#888\"/>\n";
    o += "<text x=\"" + fmt("%.0f", lefts[p] + w / 2) + "\" y=\"" + fmt("%.0f", top - 8) +
         "\" font-size=\"13\" text-anchor=\"middle\">" + titles[p] + "</text>\n";
    for (int k = 0; k <= 4; ++k) {  // y ticks
      double v = ymax[p] * k / 4;
      o += "<text x=\"" + fmt("%.0f", lefts[p] - 6) + "\" y=\"" + fmt("%.1f", y(p, v) + 4) +
           "\" font-size=\"11\" text-anchor=\"end\">" + fmt(v >= 100 ? "%.0f" : "%.1f", v) + "</text>\n";
    }
    std::vector<int> ns;
    for (const Point& q : points)
      if (std::find(ns.begin(), ns.end(), q.n) == ns.end()) ns.push_back(q.n);
    for (int n : ns)  // x ticks: the N of the sweep
      o += "<text x=\"" + fmt("%.1f", x(p, n)) + "\" y=\"" + fmt("%.0f", top + h + 16) +
           "\" font-size=\"11\" text-anchor=\"middle\">" + std::to_string(n) + "</text>\n";
    o += "<text x=\"" + fmt("%.0f", lefts[p] + w / 2) + "\" y=\"" + fmt("%.0f", top + h + 34) +
         "\" font-size=\"12\" text-anchor=\"middle\">N (beams)</text>\n";
    for (size_t v = 0; v < order.size(); ++v) {
      std::vector<const Point*> ps = by[order[v]];
      std::sort(ps.begin(), ps.end(), [](const Point* a, const Point* b) { return a->n < b->n; });
      std::string pts;
      for (const Point* q : ps)
        pts += fmt("%.1f", x(p, q->n)) + "," + fmt("%.1f", y(p, p ? q->latency_ms : q->goodput)) + " ";
      o += "<polyline data-variant=\"" + order[v] + "\" fill=\"none\" stroke=\"" + palette[v % 7] +
           "\" stroke-width=\"2\"" + (order[v] == "baseline" ? " stroke-dasharray=\"6 4\"" : "") + " points=\"" + pts +
           "\"/>\n";
    }
    o += "</g>\n";
  }
  double lx = 80;
  for (size_t v = 0; v < order.size(); ++v) {
    o += "<line x1=\"" + fmt("%.0f", lx) + "\" y1=\"408\" x2=\"" + fmt("%.0f", lx + 24) + "\" y2=\"408\" stroke=\"" +
         palette[v % 7] + "\" stroke-width=\"2\"" + (order[v] == "baseline" ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    o += "<text x=\"" + fmt("%.0f", lx + 30) + "\" y=\"412\" font-size=\"12\">" + order[v] + "</text>\n";
    lx += 50 + 7.0 * double(order[v].size());
  }
  return o + "</svg>\n";
}

}  // namespace flashtts::tts
