#include "actors/answer.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <map>
#include <numeric>

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

namespace {

// Removes every "\cmd{...}" wrapper but keeps its content (\text{(C)} -> (C)).
void unwrap(std::string& s, std::string_view cmd) {
  for (size_t p; (p = s.find(cmd)) != std::string::npos;) {
    size_t open = p + cmd.size();
    if (open >= s.size() || s[open] != '{') {
      s.erase(p, cmd.size());
      continue;
    }
    int depth = 0;
    size_t close = std::string::npos;
    for (size_t i = open; i < s.size(); ++i) {
      if (s[i] == '{') ++depth;
      else if (s[i] == '}' && --depth == 0) {
        close = i;
        break;
      }
    }
    if (close == std::string::npos) return;
    s = s.substr(0, p) + s.substr(open + 1, close - open - 1) + s.substr(close + 1);
  }
}

// "\frac12" -> "\frac{1}{2}", "\frac1{2}" -> "\frac{1}{2}", "\sqrt2" -> "\sqrt{2}".
void brace_short_args(std::string& s, std::string_view cmd, int n_args) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, cmd.size(), cmd) != 0) {
      out += s[i++];
      continue;
    }
    out += cmd;
    i += cmd.size();
    for (int a = 0; a < n_args && i < s.size(); ++a) {
      if (s[i] == '{') {  // copy a braced argument as is
        int depth = 0;
        size_t j = i;
        for (; j < s.size(); ++j) {
          if (s[j] == '{') ++depth;
          else if (s[j] == '}' && --depth == 0) break;
        }
        out += s.substr(i, j - i + 1);
        i = j + 1;
      } else {
        out += '{';
        out += s[i++];
        out += '}';
      }
    }
  }
  s = out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit((unsigned char)c); });
}

// A number written as an integer, a decimal, a/b or \frac{a}{b} (with a
// sign), as a reduced fraction "p" or "p/q"; "" when it is none of those.
std::string canonical_rational(std::string s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.erase(0, 1);
  }
  std::string num, den = "1";
  if (s.rfind("\\frac{", 0) == 0) {
    size_t mid = s.find("}{");
    if (mid == std::string::npos || s.back() != '}') return "";
    num = s.substr(6, mid - 6);
    den = s.substr(mid + 2, s.size() - mid - 3);
    if (!num.empty() && num[0] == '-') {
      neg = !neg;
      num.erase(0, 1);
    }
  } else if (size_t slash = s.find('/'); slash != std::string::npos) {
    num = s.substr(0, slash);
    den = s.substr(slash + 1);
  } else {
    num = s;
  }
  // Decimals: "2.50" -> 250/100, ".5" -> 5/10.
  auto decimal = [](std::string& n, std::string& d) {
    size_t dot = n.find('.');
    if (dot == std::string::npos) return true;
    std::string frac = n.substr(dot + 1);
    n = n.substr(0, dot) + frac;
    if (frac.empty() || !all_digits(frac)) return false;
    d += std::string(frac.size(), '0');
    return true;
  };
  if (!decimal(num, den)) return "";
  if (num.empty() || !all_digits(num) || !all_digits(den) || num.size() > 17 || den.size() > 17) return "";
  int64_t p = std::stoll(num), q = std::stoll(den);
  if (q == 0) return "";
  int64_t g = std::gcd(p, q);
  p /= g, q /= g;
  if (p == 0) neg = false;
  std::string out = (neg ? "-" : "") + std::to_string(p);
  if (q != 1) out += "/" + std::to_string(q);
  return out;
}

// "1,234,567": 1-3 digits, then groups of a comma and 3 digits to the end.
bool thousands_grouped(std::string_view ip) {
  size_t first = ip.find(',');
  if (first == std::string_view::npos || first == 0 || first > 3 || !all_digits(ip.substr(0, first))) return false;
  for (size_t i = first; i < ip.size(); i += 4)
    if (ip[i] != ',' || i + 4 > ip.size() || !all_digits(ip.substr(i + 1, 3))) return false;
  return true;
}

}  // namespace

std::string normalize_answer(std::string_view answer) {
  std::string s;
  for (char c : answer)
    if (!std::isspace((unsigned char)c)) s += c;
  for (const char* thin : {"\\!", "\\,", "\\;", "\\:", "\\ "}) replace_all(s, thin, "");
  for (const char* gone : {"\\left", "\\right", "\\displaystyle", "^{\\circ}", "^\\circ", "\\circ", "\\%", "%", "\\$", "$"})
    replace_all(s, gone, "");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  // Units after a number ("5\text{ cm}", "10\mbox{ inches}"): dropped; a
  // \text{...} that is the whole answer keeps its content.
  for (const char* t : {"\\text{", "\\mbox{", "\\textbf{", "\\mathrm{"}) {
    size_t p = s.find(t);
    if (p != std::string::npos && p > 0 && (std::isdigit((unsigned char)s[p - 1]) || s[p - 1] == '}'))
      if (s.back() == '}' && s.find('}', p) == s.size() - 1) s.erase(p);
  }
  for (const char* t : {"\\text", "\\mbox", "\\textbf", "\\mathrm"}) unwrap(s, t);
  // "x=5" -> "5" (a short variable name on the left only).
  if (size_t eq = s.find('='); eq != std::string::npos && eq <= 2 && s.find('=', eq + 1) == std::string::npos &&
                              std::all_of(s.begin(), s.begin() + eq, [](char c) { return std::isalpha((unsigned char)c); }))
    s.erase(0, eq + 1);
  while (!s.empty() && s.back() == '.') s.pop_back();
  brace_short_args(s, "\\frac", 2);
  brace_short_args(s, "\\sqrt", 1);
  // Thousands separators: only a whole answer like "1,000,000" or "-12,345.5".
  {
    std::string_view v = s;
    if (!v.empty() && v[0] == '-') v.remove_prefix(1);
    if (thousands_grouped(v.substr(0, v.find('.')))) std::erase(s, ',');
  }
  std::string r = canonical_rational(s);
  return r.empty() ? s : r;
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
