#include "runtime/eval_dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace flashtts::eval {

namespace {

using json = nlohmann::ordered_json;  // fields in file order, for messages

// AIME25 prompts (jianzhnie/LLMEval) end with the instruction the server's
// system prompt already gives; the bare problem is sent instead.
constexpr std::string_view kAime25Suffix =
    "\nPlease reason step by step, and put your final answer within \\boxed{}.";

struct Layout {
  const char* name;
  const char* text_key;  // the problem's field
  const char* id_key;    // "" = none
  const char* what;      // for docs and errors
};

constexpr Layout kLayouts[] = {
    {"math500", "problem", "unique_id", "MATH-500: problem, answer (LaTeX string), unique_id, solution, subject, level"},
    {"qwen_math", "problem", "id", "AIME24 / AMC23 (Qwen2.5-Math files): id, problem, answer (string or number), url"},
    {"gsm8k", "question", "", "GSM8K: question, answer (a solution ending in '#### <answer>')"},
    {"aime25", "prompt", "", "AIME25 (LLMEval file): prompt (with a 'Please reason step by step' suffix), answer"},
    {"plain", "problem", "id", "plain: problem, answer (string or number), optional id"},
};

const Layout* detect(const json& j) {
  auto has = [&](const char* k) { return j.contains(k); };
  if (!has("answer")) return nullptr;
  if (has("problem")) {
    if (has("unique_id")) return &kLayouts[0];
    if (has("url")) return &kLayouts[1];
    return &kLayouts[4];
  }
  if (has("question")) return &kLayouts[2];
  if (has("prompt")) return &kLayouts[3];
  return nullptr;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return std::string(s.substr(a, b - a));
}

// A gold answer as text: numbers without a zero fraction ("27.0" -> "27"),
// digit strings without leading zeros (AIME24 writes "025").
std::string answer_text(const json& v) {
  std::string s;
  if (v.is_number_integer()) {
    s = v.dump();
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    s = (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) ? std::to_string(int64_t(d)) : v.dump();
  } else {
    s = trim(v.get<std::string>());
  }
  if (s.size() > 1 && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit((unsigned char)c); })) {
    size_t z = s.find_first_not_of('0');
    s = z == std::string::npos ? "0" : s.substr(z);
  }
  return s;
}

std::string field_list(const json& j) {
  std::string out;
  for (auto it = j.begin(); it != j.end(); ++it) out += (out.empty() ? "" : ", ") + it.key();
  return out.empty() ? "(none)" : out;
}

}  // namespace

std::string gsm8k_final_answer(std::string_view solution) {
  size_t p = solution.rfind("####");
  if (p == std::string_view::npos) return "";
  return trim(solution.substr(p + 4));
}

std::string describe_layouts() {
  std::string out;
  for (const Layout& l : kLayouts) out += std::string("  ") + l.name + " - " + l.what + "\n";
  return out;
}

Expected<Dataset> parse_dataset(std::string_view text, const std::string& source) {
  Dataset ds;
  const Layout* layout = nullptr;
  int64_t layout_line = 0;
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (trim(line).empty()) continue;
    std::string where = source + ":" + std::to_string(line_no) + ": ";
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      return make_error(where + "not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) return make_error(where + "expected a JSON object, found " + std::string(j.type_name()));
    if (!layout) {
      layout = detect(j);
      layout_line = line_no;
      if (!layout)
        return make_error(where + "no known dataset layout has the fields " + field_list(j) + "; known layouts:\n" +
                          describe_layouts());
      ds.layout = layout->name;
    }
    std::string ctx = " (layout " + ds.layout + ", detected from line " + std::to_string(layout_line) + ")";
    auto missing = [&](const char* key, const char* want) {
      return make_error(where + "field '" + key + "' " + (j.contains(key) ? "must be " : "is missing, expected ") + want +
                        ctx);
    };
    const json* t = j.contains(layout->text_key) ? &j[layout->text_key] : nullptr;
    if (!t || !t->is_string() || trim(t->get<std::string>()).empty())
      return missing(layout->text_key, "a non-empty string");
    const json* a = j.contains("answer") ? &j["answer"] : nullptr;
    Problem p;
    p.index = int64_t(ds.problems.size());
    p.line = line_no;
    p.problem = t->get<std::string>();
    if (ds.layout == "gsm8k") {
      if (!a || !a->is_string()) return missing("answer", "a string ending in '#### <answer>'");
      p.answer = gsm8k_final_answer(a->get<std::string>());
      if (p.answer.empty())
        return make_error(where + "field 'answer' has no '#### <answer>' final answer" + ctx);
    } else {
      if (!a || !(a->is_string() || a->is_number())) return missing("answer", "a string or a number");
      p.answer = answer_text(*a);
      if (p.answer.empty()) return make_error(where + "field 'answer' is empty" + ctx);
    }
    if (ds.layout == "aime25" && p.problem.ends_with(kAime25Suffix))
      p.problem.resize(p.problem.size() - kAime25Suffix.size());
    if (*layout->id_key && j.contains(layout->id_key)) {
      const json& id = j[layout->id_key];
      p.id = id.is_string() ? id.get<std::string>() : id.dump();
    }
    ds.problems.push_back(std::move(p));
  }
  if (ds.problems.empty()) return make_error(source + ": no problems (the file is empty)");
  return ds;
}

Expected<Dataset> read_dataset(const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return make_error(file.string() + ": cannot open the dataset file");
  std::ostringstream s;
  s << f.rdbuf();
  return parse_dataset(s.str(), file.string());
}

}  // namespace flashtts::eval
