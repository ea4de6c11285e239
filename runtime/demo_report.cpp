#include "runtime/demo_report.h"

#include <algorithm>
#include <cstdio>

#include "runtime/eval_metrics.h"

namespace flashtts::demo {

namespace {

// The widest a column gets; a terminal of 100 columns holds two.
constexpr size_t kMaxColumn = 46;

std::string fmt(const char* f, auto... args) {
  char b[256];
  std::snprintf(b, sizeof b, f, args...);
  return b;
}

// One column: the steps with their scores, then the answer and the cost.
struct Column {
  std::vector<std::string> steps, tail;
};

Column column(const Outcome& o) {
  Column c;
  if (o.failed) {
    c.tail.push_back("failed: " + o.error);
    return c;
  }
  for (const auto& s : o.steps) c.steps.push_back(fmt("[%.3f] ", s.score) + s.text);
  c.tail.push_back("answer " + (o.answer.empty() ? std::string("(none found)") : o.answer) +
                   (o.right ? ": right" : ": wrong"));
  std::string cost = fmt("%lld policy tokens", (long long)o.policy_tokens);
  if (o.prm_tokens) cost += fmt(", %lld PRM", (long long)o.prm_tokens);
  c.tail.push_back(cost + fmt(", %.2f s", o.latency_ms / 1000));
  return c;
}

std::string cut(std::string s, size_t width) {
  if (s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}

}  // namespace

Outcome read_outcome(const ServerFrame& fr, const std::string& gold) {
  Outcome o;
  if (fr.type != "result") {
    o.failed = true;
    o.error = fr.code + ": " + fr.message;
    return o;
  }
  const msg::MapReader& r = fr.body;
  std::vector<msg::MapReader> steps;
  msg::MapReader st;
  Status s = r.get_opt("answer", &o.answer);
  if (s) s = r.get_opt("steps", &steps);
  if (s) s = r.get_opt("stats", &st);
  for (size_t i = 0; s && i < steps.size(); ++i) {
    Outcome::Step step;
    s = steps[i].get_opt("text", &step.text);
    if (s) s = steps[i].get_opt("score", &step.score);
    std::replace(step.text.begin(), step.text.end(), '\n', ' ');
    o.steps.push_back(std::move(step));
  }
  if (s) s = st.get_opt("policy_tokens", &o.policy_tokens);
  if (s) s = st.get_opt("prm_tokens", &o.prm_tokens);
  if (s) s = st.get_opt("latency_ms", &o.latency_ms);
  if (!s) {
    o.failed = true;
    o.error = "bad_result: " + s.message();
    return o;
  }
  o.right = eval::answers_match(gold, o.answer);
  return o;
}

std::string side_by_side(const std::string& left_title, const Outcome& left, const std::string& right_title,
                         const Outcome& right) {
  Column lc = column(left), rc = column(right);
  // The answers side by side: the shorter list of steps ends in blank lines.
  const size_t n_steps = std::max(lc.steps.size(), rc.steps.size());
  auto lines = [&](const std::string& title, Column& c) {
    std::vector<std::string> v = {title};
    c.steps.resize(n_steps);
    v.insert(v.end(), c.steps.begin(), c.steps.end());
    v.insert(v.end(), c.tail.begin(), c.tail.end());
    return v;
  };
  std::vector<std::string> l = lines(left_title, lc), r = lines(right_title, rc);
  size_t width = 0;
  for (const auto& s : l) width = std::max(width, std::min(s.size(), kMaxColumn));
  std::string out;
  for (size_t i = 0; i < std::max(l.size(), r.size()); ++i) {
    std::string a = i < l.size() ? cut(l[i], kMaxColumn) : "";
    std::string b = i < r.size() ? cut(r[i], kMaxColumn) : "";
    a.resize(width, ' ');
    std::string line = "  " + a + " | " + b;
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

void Tally::add(const Outcome& o) {
  ++done;
  right += o.right;
  failed += o.failed;
  policy_tokens += o.policy_tokens;
}

std::string progress_bar(int done, int total, int width) {
  int fill = total > 0 ? std::min(done, total) * width / total : width;
  return "[" + std::string(fill, '#') + std::string(width - fill, '.') + "] " + std::to_string(done) + "/" +
         std::to_string(total);
}

std::string accuracy_line(const std::string& label, const Tally& t, int total, int label_width) {
  std::string padded = label;
  if ((int)padded.size() < label_width) padded.resize(label_width, ' ');
  std::string line = fmt("  %s %2d/%-2d %6.1f%%  %5lld policy tokens per problem", padded.c_str(), t.right, total,
                         total ? 100.0 * t.right / total : 0.0,
                         (long long)(t.done ? t.policy_tokens / t.done : 0));
  if (t.failed) line += fmt("  (%d failed)", t.failed);
  return line + "\n";
}

}  // namespace flashtts::demo
