#include "gpu/pretokenizer.h"

#include <string>

namespace flashtts {
namespace {

// What the patterns ask of a character. CR and LF are spaces too.
enum Class : uint8_t { kLetter, kNumber, kSpace, kNewline, kOther };

Class classify(char32_t cp) {
  if (cp == '\r' || cp == '\n') return kNewline;
  if (unicode::is_letter(cp)) return kLetter;
  if (unicode::is_number(cp)) return kNumber;
  if (unicode::is_space(cp)) return kSpace;
  return kOther;
}

constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The text as the matchers see it: code points and their classes.
struct Text {
  const std::vector<unicode::CodePoint>& cps;
  const std::vector<uint8_t>& cls;
  size_t n;

  char32_t cp(size_t i) const { return cps[i].cp; }
  bool is(size_t i, Class c) const { return i < n && cls[i] == c; }
  bool space(size_t i) const { return i < n && (cls[i] == kSpace || cls[i] == kNewline); }
  // [^\s\p{L}\p{N}]
  bool other(size_t i) const { return is(i, kOther); }
  size_t run(size_t i, Class c) const {
    while (is(i, c)) ++i;
    return i;
  }
  size_t run_other(size_t i) const { return run(i, kOther); }
  size_t run_space(size_t i) const {
    while (space(i)) ++i;
    return i;
  }
};

// 's|'t|'re|'ve|'m|'ll|'d from i; the end of the match or i when none.
// Case-insensitive as (?i:) in Oniguruma, where U+017F (long s) folds to s.
size_t match_contraction(const Text& t, size_t i, bool ignore_case) {
  if (t.cp(i) != '\'' || i + 1 >= t.n) return i;
  auto lower = [&](size_t k) -> char32_t {
    if (k >= t.n) return 0;
    const char32_t c = t.cp(k);
    if (!ignore_case) return c;
    if (c == 0x17F) return 's';
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  };
  const char32_t a = lower(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') {
    // A long s matches only under (?i); without it lower() leaves it as is.
    return i + 2;
  }
  const char32_t b = lower(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return i;
}

// One match of the Qwen2 / Llama3 pattern at i (never empty).
size_t match_qwen2(const Text& t, size_t i, size_t max_digits) {
  size_t e = match_contraction(t, i, /*ignore_case=*/true);
  if (e > i) return e;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (t.is(i, kLetter)) return t.run(i, kLetter);
  if ((t.is(i, kSpace) || t.is(i, kOther)) && t.is(i + 1, kLetter)) return t.run(i + 1, kLetter);
  // \p{N} or \p{N}{1,3}
  if (t.is(i, kNumber)) {
    e = i + 1;
    while (e - i < max_digits && t.is(e, kNumber)) ++e;
    return e;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t p = i;
  if (t.cp(i) == ' ' && t.other(i + 1)) p = i + 1;
  if (t.other(p)) return t.run(t.run_other(p), kNewline);
  // The rest all start with whitespace.
  const size_t ws_end = t.run_space(i);
  if (ws_end == i) return i + 1;  // unreachable: every class is covered above
  // \s*[\r\n]+ : backtracking lands on the last newline of the run.
  for (size_t k = ws_end; k > i; --k)
    if (t.is(k - 1, kNewline)) return k;
  // \s+(?!\S) gives back one space before a non-space; else \s+.
  if (ws_end < t.n && ws_end - i >= 2) return ws_end - 1;
  return ws_end;
}

// One match of the GPT-2 pattern at i (never empty).
size_t match_gpt2(const Text& t, size_t i) {
  const size_t e = match_contraction(t, i, /*ignore_case=*/false);
  if (e > i) return e;
  const size_t p = t.cp(i) == ' ' ? i + 1 : i;  // ` ?`, given back when the class fails
  for (Class c : {kLetter, kNumber, kOther}) {
    if (p != i && t.is(p, c)) return t.run(p, c);
    if (t.is(i, c)) return t.run(i, c);
  }
  const size_t ws_end = t.run_space(i);
  if (ws_end == i) return i + 1;  // unreachable
  if (ws_end < t.n && ws_end - i >= 2) return ws_end - 1;
  return ws_end;
}

}  // namespace

const char* pretokenizer_name(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::Qwen2: return "qwen2";
    case PreTokenizer::Llama3: return "llama3";
    case PreTokenizer::Gpt2: return "gpt2";
  }
  return "?";
}

std::string_view pretokenizer_pattern(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::Qwen2: return kQwen2Pattern;
    case PreTokenizer::Llama3: return kLlama3Pattern;
    case PreTokenizer::Gpt2: return kGpt2Pattern;
  }
  return {};
}

std::optional<PreTokenizer> pretokenizer_from_pattern(std::string_view regex) {
  for (PreTokenizer p : {PreTokenizer::Qwen2, PreTokenizer::Llama3, PreTokenizer::Gpt2})
    if (regex == pretokenizer_pattern(p)) return p;
  return std::nullopt;
}

void split_pretokens(PreTokenizer p, std::string_view text, std::vector<unicode::CodePoint>* cps,
                     std::vector<std::pair<uint32_t, uint32_t>>* out) {
  out->clear();
  unicode::decode_utf8(text, cps);
  std::vector<uint8_t> cls(cps->size());
  for (size_t i = 0; i < cps->size(); ++i) cls[i] = classify((*cps)[i].cp);
  const Text t{*cps, cls, cps->size()};
  auto offset = [&](size_t i) {
    return i < t.n ? (*cps)[i].offset : static_cast<uint32_t>(text.size());
  };
  size_t i = 0;
  while (i < t.n) {
    size_t e = 0;
    switch (p) {
      case PreTokenizer::Qwen2: e = match_qwen2(t, i, 1); break;
      case PreTokenizer::Llama3: e = match_qwen2(t, i, 3); break;
      case PreTokenizer::Gpt2: e = match_gpt2(t, i); break;
    }
    out->emplace_back(offset(i), offset(e));
    i = e;
  }
}

}  // namespace flashtts
