#include "messages/requests.h"

#include <algorithm>

#include "messages/utf8.h"

namespace flashtts::msg {

namespace {

bool one_of(const std::string& v, std::initializer_list<const char*> allowed, std::string* list) {
  for (const char* a : allowed) {
    *list += (list->empty() ? "" : ", ") + std::string(a);
    if (v == a) return true;
  }
  return false;
}

Status in_range(const char* name, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    return make_error(std::string("'") + name + "' = " + std::to_string(v) + " is out of range [" + std::to_string(lo) +
                      ", " + std::to_string(hi) + "]");
  return Status::success();
}

Status sampling_ok(double temperature, double top_p, int32_t top_k) {
  if (temperature < 0 || temperature > 100) return make_error("'temperature' must be in [0, 100]");
  if (!(top_p > 0 && top_p <= 1)) return make_error("'top_p' must be in (0, 1]");
  if (top_k < 0) return make_error("'top_k' must be >= 0 (0 = off)");
  return Status::success();
}

Status deadline_ok(int64_t d, const Limits& l) { return in_range("deadline_ms", d, 0, l.max_deadline_ms); }

// "'<name>' = '<value>' is not one of: ..." with the client's value quoted.
Status not_one_of(const char* name, const std::string& v, const std::string& list) {
  return make_error(std::string("'") + name + "' = '" + quote_client_bytes(v) + "' is not one of: " + list);
}

}  // namespace

// ---------------------------------------------------------------- solve

const std::vector<std::string_view>& SolveParams::fields() {
  static const std::vector<std::string_view> f = {
      "problem", "strategy", "n", "beam_width", "max_steps", "max_tokens_per_step", "temperature", "top_p", "top_k",
      "seed", "aggregation", "selection", "lookahead", "filter_duplicates", "sort_completed", "answer_marker",
      "return_completions", "stream", "deadline_ms", "trace"};
  return f;
}

void SolveParams::write(MapWriter& w) const {
  w.put("problem", problem).put("strategy", strategy).put("n", n).put("beam_width", beam_width);
  w.put("max_steps", max_steps).put("max_tokens_per_step", max_tokens_per_step);
  w.put("temperature", temperature).put("top_p", top_p).put("top_k", top_k).put("seed", seed);
  w.put("aggregation", aggregation).put("selection", selection);
  w.put("lookahead", lookahead).put("filter_duplicates", filter_duplicates).put("sort_completed", sort_completed);
  w.put("answer_marker", answer_marker).put("return_completions", return_completions);
  w.put("stream", stream).put("deadline_ms", deadline_ms);
  if (trace.on()) {
    MapWriter t;
    t.put("step_tokens", trace.step_tokens).put("end_prob", trace.end_prob).put("seed", trace.seed);
    w.put("trace", t);
  }
}

Status SolveParams::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("problem", &problem));
  FLASHTTS_TRY(r.get_opt("strategy", &strategy));
  FLASHTTS_TRY(r.get_opt("n", &n));
  FLASHTTS_TRY(r.get_opt("beam_width", &beam_width));
  FLASHTTS_TRY(r.get_opt("max_steps", &max_steps));
  FLASHTTS_TRY(r.get_opt("max_tokens_per_step", &max_tokens_per_step));
  FLASHTTS_TRY(r.get_opt("temperature", &temperature));
  FLASHTTS_TRY(r.get_opt("top_p", &top_p));
  FLASHTTS_TRY(r.get_opt("top_k", &top_k));
  FLASHTTS_TRY(r.get_opt("seed", &seed));
  FLASHTTS_TRY(r.get_opt("aggregation", &aggregation));
  FLASHTTS_TRY(r.get_opt("selection", &selection));
  FLASHTTS_TRY(r.get_opt("lookahead", &lookahead));
  FLASHTTS_TRY(r.get_opt("filter_duplicates", &filter_duplicates));
  FLASHTTS_TRY(r.get_opt("sort_completed", &sort_completed));
  FLASHTTS_TRY(r.get_opt("answer_marker", &answer_marker));
  FLASHTTS_TRY(r.get_opt("return_completions", &return_completions));
  FLASHTTS_TRY(r.get_opt("stream", &stream));
  FLASHTTS_TRY(r.get_opt("deadline_ms", &deadline_ms));
  if (r.has("trace") && !r.is_nil("trace")) {
    MapReader t;
    FLASHTTS_TRY(r.get("trace", &t));
    FLASHTTS_TRY(t.only_keys({"step_tokens", "end_prob", "seed"}));
    FLASHTTS_TRY(t.get("step_tokens", &trace.step_tokens));
    FLASHTTS_TRY(t.get("end_prob", &trace.end_prob));
    FLASHTTS_TRY(t.get_opt("seed", &trace.seed));
    if (trace.step_tokens.empty()) return make_error("'trace.step_tokens' is empty: give the length table");
  }
  auto given = [&](std::string_view k) { return r.has(k) && !r.is_nil(k); };
  // Fewer completions than the server's default beam width: search with n
  // (one beam of n copies; dvts one subtree of n candidates), as `flashtts
  // eval` does, rather than refuse. A beam_width the request gives is kept.
  if (!given("beam_width") && n < beam_width) beam_width = n;
  // The server's beam-search defaults mean nothing to the other strategies:
  // switch them off unless the request itself set them (then validate()
  // says why they do not apply).
  if (strategy != "beam_search") {
    if (!given("lookahead")) lookahead = 0;
    if (!given("filter_duplicates")) filter_duplicates = false;
    if (!given("sort_completed")) sort_completed = false;
  }
  return Status::success();
}

Status SolveParams::validate(const Limits& l) const {
  if (problem.empty()) return make_error("'problem' is empty");
  if ((int64_t)problem.size() > l.max_problem_bytes)
    return make_error("'problem' has " + std::to_string(problem.size()) + " bytes; the limit is " +
                      std::to_string(l.max_problem_bytes));
  FLASHTTS_TRY(check_utf8("'problem'", problem));
  FLASHTTS_TRY(check_utf8("'answer_marker'", answer_marker));
  std::string list;
  if (!one_of(strategy, {"best_of_n", "beam_search", "dvts"}, &list))
    return not_one_of("strategy", strategy, list);
  FLASHTTS_TRY(in_range("n", n, 1, l.max_n));
  FLASHTTS_TRY(in_range("beam_width", beam_width, 1, l.max_n));
  if (n % beam_width != 0 && strategy != "best_of_n")
    return make_error("'n' = " + std::to_string(n) + " must be a multiple of 'beam_width' = " +
                      std::to_string(beam_width) + " for " + strategy + " (" +
                      (strategy == "dvts" ? "n / beam_width subtrees of beam_width candidates each"
                                          : "n / beam_width beams survive each step, each copied beam_width times") +
                      ")");
  FLASHTTS_TRY(in_range("max_steps", max_steps, 1, l.max_steps));
  FLASHTTS_TRY(in_range("lookahead", lookahead, 0, l.max_steps));
  if (strategy != "beam_search") {
    if (lookahead != 0)
      return make_error("'lookahead' = " + std::to_string(lookahead) + " applies only to beam_search, not " + strategy);
    if (filter_duplicates) return make_error("'filter_duplicates' applies only to beam_search, not " + strategy);
    if (sort_completed) return make_error("'sort_completed' applies only to beam_search, not " + strategy);
  }
  FLASHTTS_TRY(in_range("max_tokens_per_step", max_tokens_per_step, 1, l.max_tokens_per_step));
  FLASHTTS_TRY(sampling_ok(temperature, top_p, top_k));
  list.clear();
  if (!one_of(aggregation, {"last", "min", "prod", "mean"}, &list))
    return not_one_of("aggregation", aggregation, list);
  list.clear();
  if (!one_of(selection, {"naive", "weighted", "majority"}, &list))
    return not_one_of("selection", selection, list);
  if (trace.on()) {
    if (!(trace.end_prob > 0 && trace.end_prob <= 1)) return make_error("'trace.end_prob' must be in (0, 1]");
    // A step must end at its drawn length, so every length must fit a step.
    for (int32_t t : trace.step_tokens)
      if (t < 1 || t > max_tokens_per_step)
        return make_error("'trace.step_tokens' holds " + std::to_string(t) + "; every length must be in [1, " +
                          std::to_string(max_tokens_per_step) + "] ('max_tokens_per_step')");
  }
  return deadline_ok(deadline_ms, l);
}

// ---------------------------------------------------------------- generate

const std::vector<std::string_view>& GenerateParams::fields() {
  static const std::vector<std::string_view> f = {"prompt", "chat",  "max_tokens",   "temperature", "top_p",
                                                  "top_k",  "seed",  "stop_at_step", "stream",      "deadline_ms"};
  return f;
}

void GenerateParams::write(MapWriter& w) const {
  w.put("prompt", prompt).put("chat", chat).put("max_tokens", max_tokens).put("temperature", temperature);
  w.put("top_p", top_p).put("top_k", top_k).put("seed", seed).put("stop_at_step", stop_at_step);
  w.put("stream", stream).put("deadline_ms", deadline_ms);
}

Status GenerateParams::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("prompt", &prompt));
  FLASHTTS_TRY(r.get_opt("chat", &chat));
  FLASHTTS_TRY(r.get_opt("max_tokens", &max_tokens));
  FLASHTTS_TRY(r.get_opt("temperature", &temperature));
  FLASHTTS_TRY(r.get_opt("top_p", &top_p));
  FLASHTTS_TRY(r.get_opt("top_k", &top_k));
  FLASHTTS_TRY(r.get_opt("seed", &seed));
  FLASHTTS_TRY(r.get_opt("stop_at_step", &stop_at_step));
  FLASHTTS_TRY(r.get_opt("stream", &stream));
  FLASHTTS_TRY(r.get_opt("deadline_ms", &deadline_ms));
  return Status::success();
}

Status GenerateParams::validate(const Limits& l) const {
  if (prompt.empty()) return make_error("'prompt' is empty");
  if ((int64_t)prompt.size() > l.max_problem_bytes)
    return make_error("'prompt' has " + std::to_string(prompt.size()) + " bytes; the limit is " +
                      std::to_string(l.max_problem_bytes));
  FLASHTTS_TRY(check_utf8("'prompt'", prompt));
  FLASHTTS_TRY(in_range("max_tokens", max_tokens, 1, l.max_tokens));
  FLASHTTS_TRY(sampling_ok(temperature, top_p, top_k));
  return deadline_ok(deadline_ms, l);
}

// ---------------------------------------------------------------- score

const std::vector<std::string_view>& ScoreParams::fields() {
  static const std::vector<std::string_view> f = {"problem", "steps", "deadline_ms"};
  return f;
}

void ScoreParams::write(MapWriter& w) const {
  w.put("problem", problem).put("steps", steps).put("deadline_ms", deadline_ms);
}

Status ScoreParams::read(const MapReader& r) {
  FLASHTTS_TRY(r.get("problem", &problem));
  FLASHTTS_TRY(r.get("steps", &steps));
  FLASHTTS_TRY(r.get_opt("deadline_ms", &deadline_ms));
  return Status::success();
}

Status ScoreParams::validate(const Limits& l) const {
  if (problem.empty()) return make_error("'problem' is empty");
  if (steps.empty()) return make_error("'steps' is empty: give at least one solution step");
  FLASHTTS_TRY(in_range("steps (count)", (int64_t)steps.size(), 1, l.max_score_steps));
  size_t total = problem.size();
  for (const auto& s : steps) total += s.size();
  if ((int64_t)total > 4 * l.max_problem_bytes)
    return make_error("problem and steps have " + std::to_string(total) + " bytes; the limit is " +
                      std::to_string(4 * l.max_problem_bytes));
  FLASHTTS_TRY(check_utf8("'problem'", problem));
  for (size_t i = 0; i < steps.size(); ++i) FLASHTTS_TRY(check_utf8("'steps[" + std::to_string(i) + "]'", steps[i]));
  return deadline_ok(deadline_ms, l);
}

}  // namespace flashtts::msg
