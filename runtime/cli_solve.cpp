#include "runtime/cli_solve.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

namespace flashtts::cli {

void SolveFlags::add(CLI::App* sub, bool problem_required) {
  sub->add_option("problem", problem, "The problem text")->required(problem_required);
  sub->add_option("--strategy", strategy, "Search strategy: best_of_n, beam_search, dvts");
  sub->add_option("--n", n, "Number of samples / beams");
  sub->add_option("--beam-width", beam_width, "Beam width M (beam search, DVTS; default: the server's, or --n when that is smaller)");
  sub->add_option("--max-steps", max_steps, "Most solution steps");
  sub->add_option("--max-tokens-per-step", max_tokens_per_step, "Most tokens of one step");
  sub->add_option("--temperature", temperature, "Sampling temperature (0 = greedy)");
  sub->add_option("--top-p", top_p, "Nucleus sampling mass");
  sub->add_option("--top-k", top_k, "Top-k sampling (0 = off)");
  sub->add_option("--seed", seed, "Random seed");
  sub->add_option("--aggregation", aggregation, "Step score aggregation: last, min, prod, mean");
  sub->add_option("--selection", selection, "Answer selection: naive, weighted, majority");
  sub->add_flag("--all", all, "Also print every completion (answer, score, step scores, text)");
  sub->add_flag("--json", json, "Print the whole result as JSON");
  sub->add_flag("--quiet", quiet, "No progress on stderr");
  sub->add_option("--timeout", timeout_s, "Seconds to wait for the answer; then the request is cancelled on the server")->check(CLI::PositiveNumber);
}

msg::MapWriter SolveFlags::fields() const {
  msg::MapWriter w;
  w.put("problem", problem).put("stream", true);
  if (strategy) w.put("strategy", *strategy);
  if (n) w.put("n", *n);
  if (beam_width) w.put("beam_width", *beam_width);
  if (max_steps) w.put("max_steps", *max_steps);
  if (max_tokens_per_step) w.put("max_tokens_per_step", *max_tokens_per_step);
  if (temperature) w.put("temperature", *temperature);
  if (top_p) w.put("top_p", *top_p);
  if (top_k) w.put("top_k", *top_k);
  if (seed) w.put("seed", *seed);
  if (aggregation) w.put("aggregation", *aggregation);
  if (selection) w.put("selection", *selection);
  if (all) w.put("return_completions", true);
  return w;
}

Expected<ServerFrame> solve_and_wait(Client& client, const SolveFlags& f,
                                     const std::function<std::optional<std::string>()>& idle) {
  std::string id = client.send("solve", f.fields());
  bool tty = isatty(STDERR_FILENO);
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::milliseconds(int64_t(f.timeout_s * 1000));
  int64_t generated = 0, done = 0, total = 0;
  auto show = [&] {
    if (f.quiet) return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%ssolving: %lld generated, %lld/%lld scored, %.1f s%s", tty ? "\r" : "",
                 (long long)generated, (long long)done, (long long)total, s, tty ? "" : "\n");
    std::fflush(stderr);
  };
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      if (!f.quiet && tty && (generated || done)) std::fprintf(stderr, "\n");
      // The answer may still beat the cancel; then it is shown.
      return client.give_up(id, std::chrono::milliseconds(int64_t(f.timeout_s * 1000)));
    }
    auto fr = client.recv(std::chrono::milliseconds(50));
    if (!fr) return fr.error();
    if (idle)
      if (auto why = idle()) return make_error(*why);
    if (!fr->has_value() || (*fr)->id != id) continue;
    ServerFrame& x = **fr;
    if (x.type == "progress") {
      std::string kind;
      (void)x.body.get_opt("kind", &kind);
      if (kind == "generated") ++generated;
      if (kind == "completed") {
        (void)x.body.get_opt("done", &done);
        (void)x.body.get_opt("total", &total);
      }
      // A terminal gets a line redrawn in place; a log gets one per completion.
      if (tty || kind == "completed") show();
      continue;
    }
    if (!f.quiet && tty && (generated || done)) std::fprintf(stderr, "\n");
    if (x.type == "error") return make_error(x.code + ": " + x.message);
    return std::move(x);
  }
}

std::string to_json_text(const msg::MapReader& r) {
  std::string b = r.bytes();
  return nlohmann::json::from_msgpack(b.begin(), b.end()).dump(2);
}

namespace {

// --all in text mode: one header line per completion in the server's order
// (its answer, aggregated score, step scores, tokens and why it ended), then
// its text indented, blank lines left out.
void print_completions(const std::vector<msg::MapReader>& comps) {
  std::printf("completions: %zu\n", comps.size());
  for (size_t i = 0; i < comps.size(); ++i) {
    const msg::MapReader& c = comps[i];
    std::string text, answer, finish;
    double score = 0;
    int64_t tokens = 0;
    std::vector<float> step_scores;
    (void)c.get_opt("text", &text);
    (void)c.get_opt("answer", &answer);
    (void)c.get_opt("finish", &finish);
    (void)c.get_opt("score", &score);
    (void)c.get_opt("tokens", &tokens);
    (void)c.get_opt("step_scores", &step_scores);
    std::string steps;
    for (float s : step_scores) {
      char b[16];
      std::snprintf(b, sizeof b, " %.3f", s);
      steps += b;
    }
    std::printf("  %2zu [%.4f] answer %s  (%zu steps:%s; %lld tokens, %s)\n", i + 1, score,
                answer.empty() ? "(none)" : answer.c_str(), step_scores.size(), steps.c_str(), (long long)tokens,
                finish.empty() ? "?" : finish.c_str());
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!line.empty()) std::printf("       %s\n", line.c_str());
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
}

}  // namespace

void print_solve_result(const ServerFrame& fr, const SolveFlags& f, double seconds) {
  const msg::MapReader& r = fr.body;
  if (f.json) {
    std::cout << to_json_text(r) << "\n";
    return;
  }
  std::string answer, strategy, selection;
  double score = 0;
  int64_t n = 0;
  (void)r.get_opt("answer", &answer);
  (void)r.get_opt("score", &score);
  (void)r.get_opt("strategy", &strategy);
  (void)r.get_opt("selection", &selection);
  (void)r.get_opt("n", &n);
  std::printf("answer: %s\n", answer.empty() ? "(none found)" : answer.c_str());
  std::printf("score:  %.4f  (%s, n=%lld, %s selection)\n", score, strategy.c_str(), (long long)n, selection.c_str());
  std::vector<msg::MapReader> steps;
  if (r.get_opt("steps", &steps).ok() && !steps.empty()) {
    std::printf("steps:\n");
    for (size_t i = 0; i < steps.size(); ++i) {
      std::string text;
      double s = 0;
      (void)steps[i].get_opt("text", &text);
      (void)steps[i].get_opt("score", &s);
      // One line per step: newlines inside a step shown as spaces.
      for (char& c : text)
        if (c == '\n') c = ' ';
      std::printf("  %2zu [%.3f] %s\n", i + 1, s, text.c_str());
    }
  }
  std::vector<msg::MapReader> comps;
  if (f.all && r.get_opt("completions", &comps).ok()) print_completions(comps);
  msg::MapReader st;
  int64_t policy_tokens = 0, prm_tokens = 0;
  if (r.get_opt("stats", &st).ok()) {
    (void)st.get_opt("policy_tokens", &policy_tokens);
    (void)st.get_opt("prm_tokens", &prm_tokens);
  }
  std::printf("time:   %.2f s  (%lld policy tokens, %lld PRM tokens)\n", seconds, (long long)policy_tokens,
              (long long)prm_tokens);
}

}  // namespace flashtts::cli
