#include "actors/answer.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <map>

namespace flashtts {

namespace {

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return std::string(s.substr(a, b - a));
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

// The number-like token that ends last in `s` (digits with an optional sign,
// decimal point and thousands commas).
std::string last_number(std::string_view s) {
  std::string best;
  for (size_t i = 0; i < s.size();) {
    if (!std::isdigit((unsigned char)s[i])) {
      ++i;
      continue;
    }
    size_t a = i;
    if (a > 0 && s[a - 1] == '-') --a;
    size_t b = i;
    while (b < s.size() && (std::isdigit((unsigned char)s[b]) ||
                            ((s[b] == '.' || s[b] == ',') && b + 1 < s.size() && std::isdigit((unsigned char)s[b + 1]))))
      ++b;
    best = std::string(s.substr(a, b - a));
    i = b;
  }
  return best;
}

}  // namespace

std::string extract_answer(std::string_view text) {
  size_t p = text.rfind("\\boxed");
  if (p != std::string::npos) {
    size_t open = p + 6;
    while (open < text.size() && text[open] == ' ') ++open;
    if (open < text.size() && text[open] == '{') {
      int depth = 0;
      for (size_t i = open; i < text.size(); ++i) {
        if (text[i] == '{') ++depth;
        else if (text[i] == '}' && --depth == 0) return trim(text.substr(open + 1, i - open - 1));
      }
    }
  }
  p = text.rfind("he answer is");
  if (p != std::string::npos) {
    std::string rest = trim(text.substr(p + 12));
    if (!rest.empty() && rest[0] == ':') rest = trim(rest.substr(1));
    size_t end = rest.find('\n');
    if (end != std::string::npos) rest = rest.substr(0, end);
    while (!rest.empty() && (rest.back() == '.' || rest.back() == ' ')) rest.pop_back();
    if (!rest.empty()) return rest;
  }
  return last_number(text);
}

std::string normalize_answer(std::string_view answer) {
  std::string s;
  for (char c : answer)
    if (!std::isspace((unsigned char)c)) s += c;
  replace_all(s, "\\left", "");
  replace_all(s, "\\right", "");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  while (!s.empty() && s.back() == '.') s.pop_back();
  // Plain numbers: drop thousands commas and a zero fraction.
  bool numeric = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit((unsigned char)c) || c == ',' || c == '.' || c == '-';
  });
  if (numeric) {
    std::erase(s, ',');
    size_t dot = s.find('.');
    if (dot != std::string::npos) {
      while (s.back() == '0') s.pop_back();
      if (s.back() == '.') s.pop_back();
    }
    if (s == "-0") s = "0";
  }
  return s;
}

float aggregate_scores(std::span<const float> v, std::string_view method) {
  if (v.empty()) return 0.0f;
  if (method == "last") return v.back();
  if (method == "min") return *std::min_element(v.begin(), v.end());
  if (method == "prod") {
    double p = 1;
    for (float x : v) p *= x;
    return float(p);
  }
  assert(method == "mean");
  double s = 0;
  for (float x : v) s += x;
  return float(s / double(v.size()));
}

size_t select_candidate(std::span<const Candidate> c, std::string_view method) {
  assert(!c.empty());
  size_t best = 0;
  for (size_t i = 1; i < c.size(); ++i)
    if (c[i].score > c[best].score) best = i;
  if (method == "naive") return best;

  struct Tally {
    double sum = 0;
    int count = 0;
    size_t best = 0;
  };
  std::map<std::string, Tally> votes;
  for (size_t i = 0; i < c.size(); ++i) {
    if (c[i].answer.empty()) continue;
    auto [it, fresh] = votes.try_emplace(c[i].answer, Tally{0, 0, i});
    Tally& t = it->second;
    t.sum += c[i].score;
    ++t.count;
    if (c[i].score > c[t.best].score) t.best = i;
  }
  if (votes.empty()) return best;
  const Tally* win = nullptr;
  for (const auto& [a, t] : votes) {
    if (!win) { win = &t; continue; }
    bool better = method == "weighted" ? t.sum > win->sum
                                       : (t.count > win->count || (t.count == win->count && t.sum > win->sum));
    if (better) win = &t;
  }
  return win->best;
}

}  // namespace flashtts
